"""Record real SNMP packets for ``tests/probes/test_ber.py`` (``python capture.py``).

Starts the test snmpd (``tests/peers/snmpd.py``) on loopback, and writes ``snmpd.json``:

- answers of snmpd to requests this script sends (v2c GET, GETBULK, GETNEXT past the end,
  the restricted community's noSuchObject, noSuchInstance, IpAddress, Opaque; v1 GET with
  noSuchName, v1 GETNEXT);
- requests net-snmp's own ``snmpget`` and ``snmpbulkwalk`` send (caught by a UDP socket
  standing in for the agent).

Each entry keeps the community it was recorded with (random per snmpd run; not a secret).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parents[3]))

from probes import _ber as B  # noqa: E402
from tests.peers.snmpd import start_snmpd  # noqa: E402

SYS = (1, 3, 6, 1, 2, 1, 1)
IF = (1, 3, 6, 1, 2, 1, 2, 2, 1)
IFX = (1, 3, 6, 1, 2, 1, 31, 1, 1, 1)


def ask(host: str, port: int, message: B.Message) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(3)
        s.sendto(B.encode_message(message), (host, port))
        return s.recv(65535)


def request(version: int, community: str, pdu: int, oids: list[tuple[int, ...]], reps: int = 0,
            request_id: int = 0x1234) -> B.Message:  # fmt: skip
    varbinds = tuple((o, B.NULL, None) for o in oids)
    return B.Message(version, community.encode(), pdu, request_id, 0, reps, varbinds)


def caught(argv: list[str], env: dict[str, str]) -> bytes:
    """The first datagram ``argv`` sends to a socket that never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.settimeout(5)
        port = s.getsockname()[1]
        proc = subprocess.Popen(
            [f"127.0.0.1:{port}" if a == "TARGET" else a for a in argv], env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            return s.recv(65535)
        finally:
            proc.kill()
            proc.wait()


def main() -> None:
    out: dict[str, dict[str, str]] = {}
    with tempfile.TemporaryDirectory() as tmp, start_snmpd(Path(tmp)) as agent:
        h, p, c = agent.host, agent.port, agent.community

        def keep(name: str, data: bytes, community: str, note: str) -> None:
            B.decode_message(data)  # must decode
            out[name] = {"hex": data.hex(), "community": community, "note": note}

        keep("v2c get system", ask(h, p, request(B.V2C, c, B.GET_REQUEST, [
            (*SYS, 1, 0), (*SYS, 2, 0), (*SYS, 3, 0), (*SYS, 5, 0), (*SYS, 7, 0)])),
            c, "sysDescr, sysObjectID, sysUpTime, sysName (UTF-8), sysServices")  # fmt: skip
        columns = [(*IF, 8), (*IF, 14), (*IF, 20), (*IF, 2), (*IFX, 1), (*IFX, 18), (*IFX, 6),
                   (*IFX, 10), (*IFX, 15)]  # fmt: skip
        keep("v2c getbulk interfaces", ask(h, p, request(B.V2C, c, B.GET_BULK_REQUEST, columns, 3)),
             c, "the if-mib profile's 9 columns, max-repetitions 3")  # fmt: skip
        keep("v2c getnext past the end", ask(h, p, request(B.V2C, c, B.GET_NEXT_REQUEST, [(2, 0)])),
             c, "endOfMibView")  # fmt: skip
        limited = agent.limited_community
        keep("v2c get outside the view", ask(h, p, request(
            B.V2C, limited, B.GET_REQUEST, [(*SYS, 3, 0), (*IF, 8, 1)])),
            limited, "noSuchObject for sysUpTime; ifOperStatus.1 in view")  # fmt: skip
        keep("v2c get no such instance", ask(h, p, request(
            B.V2C, c, B.GET_REQUEST, [(*SYS, 3, 1)])), c, "noSuchInstance")  # fmt: skip
        keep("v2c getnext ip address", ask(h, p, request(
            B.V2C, c, B.GET_NEXT_REQUEST, [(1, 3, 6, 1, 2, 1, 4, 20, 1, 1)])),
            c, "ipAdEntAddr: IpAddress 127.0.0.1")  # fmt: skip
        keep("v2c getnext opaque", ask(h, p, request(
            B.V2C, c, B.GET_NEXT_REQUEST, [(1, 3, 6, 1, 4, 1, 2021, 10, 1, 6)])),
            c, "UCD laLoadFloat: Opaque")  # fmt: skip
        keep("v1 get no such name", ask(h, p, request(B.V1, c, B.GET_REQUEST, [
            (*SYS, 5, 0), (*SYS, 99, 0)])), c, "noSuchName, error-index 2")  # fmt: skip
        keep("v1 getnext counter", ask(h, p, request(B.V1, c, B.GET_NEXT_REQUEST, [(*IF, 10)])),
             c, "ifInOctets.1: Counter32")  # fmt: skip
        keep("v1 getnext past the end", ask(h, p, request(B.V1, c, B.GET_NEXT_REQUEST, [(2, 0)])),
             c, "noSuchName at the end of the MIB")  # fmt: skip
        env = agent.env
        keep("net-snmp snmpget v2c request", caught(
            ["snmpget", "-v2c", "-c", "public", "-t", "1", "-r", "0", "-On", "TARGET",
             "1.3.6.1.2.1.1.5.0"], env), "public", "GetRequest")  # fmt: skip
        keep("net-snmp snmpget v1 request", caught(
            ["snmpget", "-v1", "-c", "public", "-t", "1", "-r", "0", "-On", "TARGET",
             "1.3.6.1.2.1.1.5.0"], env), "public", "GetRequest")  # fmt: skip
        keep("net-snmp snmpbulkwalk request", caught(
            ["snmpbulkwalk", "-v2c", "-c", "public", "-Cr25", "-t", "1", "-r", "0", "-On",
             "TARGET", "1.3.6.1.2.1.2.2.1.8"], env), "public", "GetBulkRequest")  # fmt: skip
    (HERE / "snmpd.json").write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {len(out)} packets to {HERE / 'snmpd.json'}")


if __name__ == "__main__":
    main()
