"""Write the vendor ``.snmprec`` recordings from the tables below (``python generate.py``).

Values are what the devices put on the wire: Cisco's sensor integers with their scale and
precision, Huawei's hundredths of dBm (or microwatts on old firmware), Teltonika's signal
levels as DisplayStrings, TimeTicks in hundredths of a second. ``net-snmp.snmprec`` is not
generated: it was recorded from the test snmpd with Debian's ``snmprec`` (see README.md).

snmprec lines are ``OID|TAG|VALUE``, sorted by OID; tags: 2 INTEGER, 4 OCTET STRING (``4x``:
hex), 6 OBJECT IDENTIFIER, 64 IpAddress, 65 Counter32, 66 Gauge32, 67 TimeTicks,
70 Counter64.
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).parent

INTEGER, STRING, OID, COUNTER32, GAUGE32, TICKS, COUNTER64 = 2, 4, 6, 65, 66, 67, 70

SYS = "1.3.6.1.2.1.1"
IF = "1.3.6.1.2.1.2.2.1"
IFX = "1.3.6.1.2.1.31.1.1.1"
ENT_NAME = "1.3.6.1.2.1.47.1.1.1.1.7"
ENT_SENSOR = "1.3.6.1.2.1.99.1.1.1"
CISCO_SENSOR = "1.3.6.1.4.1.9.9.91.1.1.1.1"
CELL_EXT = "1.3.6.1.4.1.9.9.817.1.1.1.1.1"
C3G_NET = "1.3.6.1.4.1.9.9.661.1.3.2.1"
C3G_RSSI = "1.3.6.1.4.1.9.9.661.1.3.4.1.1.1"
HW_OPTICAL = "1.3.6.1.4.1.2011.5.25.31.1.1.3.1"
TELTONIKA = "1.3.6.1.4.1.48690.2"

Row = tuple[str, int, object]


def system(descr: str, object_id: str, uptime_ticks: int, name: str) -> list[Row]:
    return [
        (f"{SYS}.1.0", STRING, descr),
        (f"{SYS}.2.0", OID, object_id),
        (f"{SYS}.3.0", TICKS, uptime_ticks),
        (f"{SYS}.5.0", STRING, name),
        (f"{SYS}.6.0", STRING, "UBND phường Phú Thủy, Phan Thiết"),
    ]


def interface(
    index: int,
    descr: str,
    oper: int,
    *,
    name: str | None = None,
    alias: str = "",
    in_octets: int = 0,
    out_octets: int = 0,
    in_errors: int = 0,
    speed_mbps: int = 1000,
    hc: bool = True,
) -> list[Row]:
    rows: list[Row] = [
        (f"{IF}.1.{index}", INTEGER, index),
        (f"{IF}.2.{index}", STRING, descr),
        (f"{IF}.5.{index}", GAUGE32, min(speed_mbps * 1_000_000, 2**32 - 1)),
        (f"{IF}.7.{index}", INTEGER, 1),
        (f"{IF}.8.{index}", INTEGER, oper),
        (f"{IF}.10.{index}", COUNTER32, in_octets % 2**32),
        (f"{IF}.14.{index}", COUNTER32, in_errors),
        (f"{IF}.16.{index}", COUNTER32, out_octets % 2**32),
        (f"{IF}.20.{index}", COUNTER32, 0),
    ]
    if hc:
        rows += [
            (f"{IFX}.1.{index}", STRING, name or descr),
            (f"{IFX}.6.{index}", COUNTER64, in_octets),
            (f"{IFX}.10.{index}", COUNTER64, out_octets),
            (f"{IFX}.15.{index}", GAUGE32, speed_mbps),
            (f"{IFX}.18.{index}", STRING, alias),
        ]
    return rows


def cisco_sensor(index: int, name: str, kind: int, scale: int, precision: int, value: int,
                 status: int = 1) -> list[Row]:  # fmt: skip
    return [
        (f"{ENT_NAME}.{index}", STRING, name),
        (f"{CISCO_SENSOR}.1.{index}", INTEGER, kind),
        (f"{CISCO_SENSOR}.2.{index}", INTEGER, scale),
        (f"{CISCO_SENSOR}.3.{index}", INTEGER, precision),
        (f"{CISCO_SENSOR}.4.{index}", INTEGER, value),
        (f"{CISCO_SENSOR}.5.{index}", INTEGER, status),
    ]


def entity_sensor(index: int, name: str, kind: int, scale: int, precision: int, value: int,
                  units: str, status: int = 1) -> list[Row]:  # fmt: skip
    return [
        (f"{ENT_NAME}.{index}", STRING, name),
        (f"{ENT_SENSOR}.1.{index}", INTEGER, kind),
        (f"{ENT_SENSOR}.2.{index}", INTEGER, scale),
        (f"{ENT_SENSOR}.3.{index}", INTEGER, precision),
        (f"{ENT_SENSOR}.4.{index}", INTEGER, value),
        (f"{ENT_SENSOR}.5.{index}", INTEGER, status),
        (f"{ENT_SENSOR}.6.{index}", STRING, units),
    ]


CISCO_DESCR = (
    "Cisco IOS Software [Cupertino], ISR Software (X86_64_LINUX_IOSD-UNIVERSALK9-M), "
    "Version 17.9.4a, RELEASE SOFTWARE (fc3)\r\n"
    "Technical Support: http://www.cisco.com/techsupport\r\n"
    "Copyright (c) 1986-2023 by Cisco Systems, Inc.\r\n"
    "Compiled Fri 20-Oct-23 10:44 by mcpre"
)

# Cisco C1111 with an SFP fiber uplink and an LTE modem (entPhysicalIndex 1003).
CISCO_ISR_LTE: list[Row] = [
    *system(CISCO_DESCR, "1.3.6.1.4.1.9.1.2593", 123_456_789, "rtr-bt-phan-thiet-phu-thuy"),
    *interface(1, "GigabitEthernet0/0/0", 1, name="Gi0/0/0", alias="VNPT FTTH uplink",
               in_octets=98_765_432_101, out_octets=12_345_678_901),
    *interface(2, "GigabitEthernet0/1/0", 1, name="Gi0/1/0", alias="codec LAN",
               in_octets=5_555_555, out_octets=7_777_777),
    *interface(3, "GigabitEthernet0/1/1", 2, name="Gi0/1/1"),
    *interface(4, "Cellular0/2/0", 1, name="Ce0/2/0", alias="Viettel 4G backup",
               in_octets=1_234_567, out_octets=2_345_678, speed_mbps=150),
    (f"{ENT_NAME}.1", STRING, "Chassis"),
    *cisco_sensor(1010, "subslot 0/0 transceiver 0 Temperature Sensor", 8, 9, 1, 351),
    *cisco_sensor(1011, "subslot 0/0 transceiver 0 Supply Voltage Sensor", 4, 8, 0, 3301),
    *cisco_sensor(1013, "subslot 0/0 transceiver 0 Tx Power Sensor", 14, 9, 1, -52),
    *cisco_sensor(1014, "subslot 0/0 transceiver 0 Rx Power Sensor", 14, 9, 1, -215),
    # A second cage, empty: the sensor is unavailable(2) and reads a floor value.
    *cisco_sensor(1024, "GigabitEthernet0/1/0 Receive Power Sensor", 14, 9, 1, -400, status=2),
    (f"{ENT_NAME}.1003", STRING, "Modem 0 on Cellular0/2/0"),
    (f"{CELL_EXT}.1.1003", INTEGER, -95),
    (f"{CELL_EXT}.2.1003", INTEGER, -120),
    (f"{CELL_EXT}.3.1003", INTEGER, 85),
    (f"{CELL_EXT}.4.1003", INTEGER, 62),
    (f"{CELL_EXT}.6.1003", GAUGE32, 3),
    (f"{C3G_NET}.2.1003", INTEGER, 3),
    (f"{C3G_NET}.9.1003", STRING, "Viettel"),
    (f"{C3G_RSSI}.1003", INTEGER, -67),
]  # fmt: skip

# Huawei EchoLife ONT, current firmware: optical power in hundredths of dBm.
HUAWEI_ONT: list[Row] = [
    *system("EchoLife HG8145V5 GPON Terminal", "1.3.6.1.4.1.2011.6.128.1.1.2.8",
            45_600_000, "ont-bt-phan-thiet-phu-thuy"),
    *interface(1, "PON 0/0/1", 1, hc=False, in_octets=3_000_000, out_octets=4_000_000),
    *interface(2, "LAN1", 1, hc=False, in_octets=1_000, out_octets=2_000),
    (f"{ENT_NAME}.16842753", STRING, "PON 0/0/1"),
    (f"{HW_OPTICAL}.8.16842753", INTEGER, -1875),
    (f"{HW_OPTICAL}.9.16842753", INTEGER, 213),
]  # fmt: skip

# The same ONT on older firmware: microwatts; a second cage without a module.
HUAWEI_ONT_LEGACY: list[Row] = [
    *system("EchoLife HG8245H GPON Terminal", "1.3.6.1.4.1.2011.6.128.1.1.2.1",
            45_600_000, "ont-bt-la-gi-tan-an"),
    *interface(1, "PON 0/0/1", 1, hc=False),
    (f"{ENT_NAME}.16842753", STRING, "PON 0/0/1"),
    (f"{ENT_NAME}.16842754", STRING, "PON 0/0/2"),
    (f"{HW_OPTICAL}.8.16842753", INTEGER, 13),
    (f"{HW_OPTICAL}.9.16842753", INTEGER, 1622),
    (f"{HW_OPTICAL}.8.16842754", INTEGER, 2147483647),
    (f"{HW_OPTICAL}.9.16842754", INTEGER, 2147483647),
]  # fmt: skip

# A GPON ONT on the standard ENTITY-SENSOR-MIB, receiving -26.10 dBm (weak); transmit in
# watts with an SI scale: 15849 x 10^-6 / 10^1 W = 1.5849 mW.
GPON_ONT_WEAK: list[Row] = [
    *system("ZXHN F670L V9.0.10P1N12", "1.3.6.1.4.1.3902.1012.3.46.10.1",
            9_876_543, "ont-bt-tuy-phong-vinh-hao"),
    *interface(1, "pon_0/1/1", 1, name="pon0"),
    *entity_sensor(1, "PON Rx Power", 1, 9, 2, -2610, "dBm"),
    *entity_sensor(2, "PON Tx Power", 6, 7, 1, 15849, "W"),
    *entity_sensor(3, "Optical module Temperature", 8, 9, 0, 47, "C"),
]  # fmt: skip

# Teltonika RUTX11 on RutOS 7: the modem table, signal levels as strings.
TELTONIKA_RUTX: list[Row] = [
    *system("Teltonika RUTX11 RUTX_R_00.07.06.10", "1.3.6.1.4.1.48690",
            8_640_000, "4g-bt-phan-thiet-phu-thuy"),
    *interface(1, "eth0", 1, name="eth0"),
    *interface(2, "qmimux0", 1, name="mob1s1a1", speed_mbps=0),
    (f"{TELTONIKA}.1.0", INTEGER, 1),
    (f"{TELTONIKA}.2.1.1.1", INTEGER, 1),
    (f"{TELTONIKA}.2.1.2.1", STRING, "Quectel EG06-E"),
    (f"{TELTONIKA}.2.1.11.1", STRING, "Registered (home)"),
    (f"{TELTONIKA}.2.1.12.1", INTEGER, -67),
    (f"{TELTONIKA}.2.1.13.1", STRING, "Viettel"),
    (f"{TELTONIKA}.2.1.15.1", STRING, "Connected"),
    (f"{TELTONIKA}.2.1.16.1", STRING, "LTE"),
    (f"{TELTONIKA}.2.1.18.1", STRING, "25143311"),
    (f"{TELTONIKA}.2.1.19.1", STRING, "12.4"),
    (f"{TELTONIKA}.2.1.20.1", STRING, "-97"),
    (f"{TELTONIKA}.2.1.21.1", STRING, "-11"),
    # RutOS 7's connectionUptime sits where old firmware had the network state.
    (f"{TELTONIKA}.3.0", GAUGE32, 86_400),
]  # fmt: skip

# Teltonika RUT950 on old firmware: scalars, every value a string; the signal is too weak.
TELTONIKA_LEGACY: list[Row] = [
    *system("Teltonika RUT950", "1.3.6.1.4.1.48690", 8_640_000, "4g-bt-la-gi-tan-an"),
    (f"{TELTONIKA}.3.0", STRING, "Registered (home)"),
    (f"{TELTONIKA}.4.0", STRING, "-71"),
    (f"{TELTONIKA}.5.0", STRING, "Vinaphone"),
    (f"{TELTONIKA}.7.0", STRING, "Connected"),
    (f"{TELTONIKA}.8.0", STRING, "LTE"),
    (f"{TELTONIKA}.22.0", STRING, "9"),
    (f"{TELTONIKA}.23.0", STRING, "-102"),
    (f"{TELTONIKA}.24.0", STRING, "-13"),
]  # fmt: skip


def counters(uptime: int, hc_in: int, in_errors: int) -> list[Row]:
    return [
        *system("counter test agent", "1.3.6.1.4.1.8072.3.2.10", uptime, "counters"),
        *interface(1, "ge0", 1, in_octets=hc_in, in_errors=in_errors),
    ]


RECORDINGS: dict[str, list[Row]] = {
    "cisco-isr-lte": CISCO_ISR_LTE,
    "huawei-ont": HUAWEI_ONT,
    "huawei-ont-legacy": HUAWEI_ONT_LEGACY,
    "gpon-ont-weak": GPON_ONT_WEAK,
    "teltonika-rutx": TELTONIKA_RUTX,
    "teltonika-legacy": TELTONIKA_LEGACY,
    # The same agent before and after a reboot (1 day up, then 42 s).
    "reboot-before": system("reboot test", "1.3.6.1.4.1.8072.3.2.10", 8_640_000, "r"),
    "reboot-after": system("reboot test", "1.3.6.1.4.1.8072.3.2.10", 4_200, "r"),
    # sysUpTime about to wrap at 2**32 ticks (497 days), then just past it.
    "uptime-wrap-before": system("wrap test", "1.3.6.1.4.1.8072.3.2.10", 4_294_960_000, "w"),
    "uptime-wrap-after": system("wrap test", "1.3.6.1.4.1.8072.3.2.10", 7_000, "w"),
    # A 64-bit counter cleared and a 32-bit counter wrapping, with no reboot in between.
    "counters-before": counters(1_000_000, 5_000_000_000, 4_294_967_000),
    "counters-after": counters(1_030_000, 1_000, 200),
    # The agent restarted: uptime and counters start again from low values.
    "counters-rebooted": counters(500, 1_000, 200),
}


def _encode(tag: int, value: object) -> str:
    if tag == STRING:
        text = str(value)
        if text.isascii() and text.isprintable():
            return f"4|{text}"
        return f"4x|{text.encode('utf-8').hex()}"
    return f"{tag}|{value}"


def render(rows: list[Row]) -> str:
    ordered = sorted(rows, key=lambda r: tuple(int(x) for x in r[0].split(".")))
    return "".join(f"{oid}|{_encode(tag, value)}\n" for oid, tag, value in ordered)


def main() -> None:
    for name, rows in RECORDINGS.items():
        (HERE / f"{name}.snmprec").write_text(render(rows), encoding="ascii")


if __name__ == "__main__":
    main()
