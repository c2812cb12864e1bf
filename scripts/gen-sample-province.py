#!/usr/bin/env python3
"""Write inventory/samples/binh-thuan/: Bình Thuận's 133 conference points as sample data.

2 sites at the provincial People's Committee, one per district-level unit (10), and 121
communes. Place names are real (before the 2025 reform); coordinates are spread
deterministically around each district's seat, inside the province. Addresses are
examples to read: nothing ever probes them.

Run: python scripts/gen-sample-province.py  (the output is committed)
"""

from __future__ import annotations

import math
import unicodedata
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "inventory" / "samples" / "binh-thuan"

# (slug, kind of unit, name, seat lat, lon, spread deg, [(commune kind, name), ...])
DISTRICTS = [
    (
        "phan-thiet",
        "thành phố",
        "Phan Thiết",
        10.933,
        108.102,
        0.06,
        [
            ("phường", "Phú Thủy"),
            ("phường", "Phú Trinh"),
            ("phường", "Phú Tài"),
            ("phường", "Phú Hài"),
            ("phường", "Thanh Hải"),
            ("phường", "Hưng Long"),
            ("phường", "Đức Nghĩa"),
            ("phường", "Đức Long"),
            ("phường", "Bình Hưng"),
            ("phường", "Mũi Né"),
            ("phường", "Hàm Tiến"),
            ("phường", "Xuân An"),
            ("xã", "Phong Nẫm"),
            ("xã", "Tiến Lợi"),
            ("xã", "Tiến Thành"),
            ("xã", "Thiện Nghiệp"),
        ],
    ),
    (
        "la-gi",
        "thị xã",
        "La Gi",
        10.659,
        107.771,
        0.05,
        [
            ("phường", "Phước Hội"),
            ("phường", "Phước Lộc"),
            ("phường", "Tân An"),
            ("phường", "Tân Thiện"),
            ("phường", "Bình Tân"),
            ("xã", "Tân Bình"),
            ("xã", "Tân Hải"),
            ("xã", "Tân Phước"),
            ("xã", "Tân Tiến"),
        ],
    ),
    (
        "tuy-phong",
        "huyện",
        "Tuy Phong",
        11.223,
        108.718,
        0.09,
        [
            ("thị trấn", "Liên Hương"),
            ("thị trấn", "Phan Rí Cửa"),
            ("xã", "Bình Thạnh"),
            ("xã", "Chí Công"),
            ("xã", "Hòa Minh"),
            ("xã", "Phong Phú"),
            ("xã", "Phú Lạc"),
            ("xã", "Phước Thể"),
            ("xã", "Vĩnh Hảo"),
            ("xã", "Vĩnh Tân"),
            ("xã", "Hòa Phú"),
        ],
    ),
    (
        "bac-binh",
        "huyện",
        "Bắc Bình",
        11.228,
        108.500,
        0.11,
        [
            ("thị trấn", "Chợ Lầu"),
            ("thị trấn", "Lương Sơn"),
            ("xã", "Bình An"),
            ("xã", "Bình Tân"),
            ("xã", "Hải Ninh"),
            ("xã", "Hòa Thắng"),
            ("xã", "Hồng Phong"),
            ("xã", "Hồng Thái"),
            ("xã", "Phan Điền"),
            ("xã", "Phan Hòa"),
            ("xã", "Phan Lâm"),
            ("xã", "Phan Rí Thành"),
            ("xã", "Phan Sơn"),
            ("xã", "Phan Thanh"),
            ("xã", "Phan Tiến"),
            ("xã", "Sông Lũy"),
        ],
    ),
    (
        "ham-thuan-bac",
        "huyện",
        "Hàm Thuận Bắc",
        11.063,
        108.117,
        0.10,
        [
            ("thị trấn", "Ma Lâm"),
            ("thị trấn", "Phú Long"),
            ("xã", "Đa Mi"),
            ("xã", "Đông Giang"),
            ("xã", "Đông Tiến"),
            ("xã", "Hàm Chính"),
            ("xã", "Hàm Đức"),
            ("xã", "Hàm Hiệp"),
            ("xã", "Hàm Liêm"),
            ("xã", "Hàm Phú"),
            ("xã", "Hàm Thắng"),
            ("xã", "Hàm Trí"),
            ("xã", "Hồng Liêm"),
            ("xã", "Hồng Sơn"),
            ("xã", "La Dạ"),
            ("xã", "Thuận Hòa"),
            ("xã", "Thuận Minh"),
        ],
    ),
    (
        "ham-thuan-nam",
        "huyện",
        "Hàm Thuận Nam",
        10.857,
        107.906,
        0.09,
        [
            ("thị trấn", "Thuận Nam"),
            ("xã", "Hàm Cần"),
            ("xã", "Hàm Cường"),
            ("xã", "Hàm Kiệm"),
            ("xã", "Hàm Minh"),
            ("xã", "Hàm Mỹ"),
            ("xã", "Hàm Thạnh"),
            ("xã", "Mương Mán"),
            ("xã", "Mỹ Thạnh"),
            ("xã", "Tân Lập"),
            ("xã", "Tân Thành"),
            ("xã", "Tân Thuận"),
            ("xã", "Thuận Quý"),
        ],
    ),
    (
        "ham-tan",
        "huyện",
        "Hàm Tân",
        10.747,
        107.633,
        0.08,
        [
            ("thị trấn", "Tân Minh"),
            ("thị trấn", "Tân Nghĩa"),
            ("xã", "Sông Phan"),
            ("xã", "Sơn Mỹ"),
            ("xã", "Tân Đức"),
            ("xã", "Tân Hà"),
            ("xã", "Tân Phúc"),
            ("xã", "Tân Thắng"),
            ("xã", "Tân Xuân"),
            ("xã", "Thắng Hải"),
        ],
    ),
    (
        "tanh-linh",
        "huyện",
        "Tánh Linh",
        11.097,
        107.686,
        0.09,
        [
            ("thị trấn", "Lạc Tánh"),
            ("xã", "Bắc Ruộng"),
            ("xã", "Đức Bình"),
            ("xã", "Đức Phú"),
            ("xã", "Đức Tân"),
            ("xã", "Đức Thuận"),
            ("xã", "Gia An"),
            ("xã", "Gia Huynh"),
            ("xã", "Huy Khiêm"),
            ("xã", "La Ngâu"),
            ("xã", "Măng Tố"),
            ("xã", "Nghị Đức"),
            ("xã", "Suối Kiết"),
        ],
    ),
    (
        "duc-linh",
        "huyện",
        "Đức Linh",
        11.183,
        107.533,
        0.07,
        [
            ("thị trấn", "Võ Xu"),
            ("thị trấn", "Đức Tài"),
            ("xã", "Đa Kai"),
            ("xã", "Đông Hà"),
            ("xã", "Đức Chính"),
            ("xã", "Đức Hạnh"),
            ("xã", "Đức Tín"),
            ("xã", "Mê Pu"),
            ("xã", "Nam Chính"),
            ("xã", "Sùng Nhơn"),
            ("xã", "Tân Hà"),
            ("xã", "Trà Tân"),
            ("xã", "Vũ Hòa"),
        ],
    ),
    (
        "phu-quy",
        "huyện",
        "Phú Quý",
        10.520,
        108.935,
        0.015,
        [
            ("xã", "Long Hải"),
            ("xã", "Ngũ Phụng"),
            ("xã", "Tam Thanh"),
        ],
    ),
]


def slug(text: str) -> str:
    text = text.replace("Đ", "D").replace("đ", "d")
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "-".join(ascii_text.lower().split())


def scatter(i: int, n: int, lat: float, lon: float, spread: float) -> tuple[float, float]:
    """A deterministic sunflower spiral around the seat."""
    r = spread * math.sqrt((i + 0.5) / n)
    a = i * 2.399963
    return round(lat + r * math.sin(a), 5), round(lon + r * math.cos(a), 5)


def q(text: str) -> str:
    return '"' + text.replace('"', '\\"') + '"'


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    regions = [
        "# Bình Thuận's region tree: province -> district-level unit -> commune.",
        "regions:",
        '  - {id: bt, name: "Bình Thuận", level: province}',
    ]
    for dslug, dkind, dname, *_rest, communes in DISTRICTS:
        regions.append(
            f"  - {{id: bt-{dslug}, name: {q(dkind.capitalize() + ' ' + dname)}, "
            f"level: district, parent: bt}}"
        )
        for ckind, cname in communes:
            regions.append(
                f"  - {{id: bt-{dslug}-{slug(cname)}, name: "
                f"{q(ckind.capitalize() + ' ' + cname)}, level: commune, "
                f"parent: bt-{dslug}}}"
            )
    (OUT / "regions.yaml").write_text("\n".join(regions) + "\n", encoding="utf-8")

    site = [
        "# The provincial People's Committee: two conference rooms and the core router.",
        "sites:",
    ]
    site += _site(
        "bt-ubnd-tinh",
        "UBND tỉnh Bình Thuận — Hội trường",
        "province",
        "bt",
        10.9289,
        108.1021,
        None,
        "10.10.0",
        core=True,
    )
    site += _site(
        "bt-ubnd-tinh-p2",
        "UBND tỉnh Bình Thuận — Phòng họp trực tuyến",
        "province",
        "bt",
        10.9293,
        108.1027,
        "bt-ubnd-tinh-core",
        "10.10.1",
    )
    (OUT / "sites-tinh.yaml").write_text("\n".join(site) + "\n", encoding="utf-8")

    n_communes = 0
    for d, (dslug, dkind, dname, lat, lon, spread, communes) in enumerate(DISTRICTS, 1):
        lines = [
            f"# {dkind.capitalize()} {dname}: the district committee and its communes.",
            "sites:",
        ]
        lines += _site(
            f"bt-{dslug}",
            f"UBND {dkind} {dname}",
            "district",
            f"bt-{dslug}",
            lat,
            lon,
            "bt-ubnd-tinh-core",
            f"10.{20 + d}.0",
            district=True,
        )
        for i, (ckind, cname) in enumerate(communes):
            clat, clon = scatter(i, len(communes), lat, lon, spread)
            cid = f"bt-{dslug}-{slug(cname)}"
            lines += _site(
                cid,
                f"UBND {ckind} {cname}",
                "commune",
                cid,
                clat,
                clon,
                f"bt-{dslug}-router",
                f"10.{20 + d}.{i + 1}",
            )
            n_communes += 1
        (OUT / f"sites-{dslug}.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert n_communes == 121, n_communes


def _site(
    sid: str,
    name: str,
    level: str,
    region: str,
    lat: float,
    lon: float,
    parent: str | None,
    net: str,
    core: bool = False,
    district: bool = False,
) -> list[str]:
    out = [
        f"  - id: {sid}",
        f"    name: {q(name)}",
        f"    level: {level}",
        f"    region: {region}",
        f"    lat: {lat}",
        f"    lon: {lon}",
    ]
    if parent:
        out.append(f"    parent: {parent}")
    out.append("    devices:")
    if core:
        out.append(f"      - {{id: {sid}-core, template: core-router, address: {net}.1}}")
    elif district:
        out.append(f"      - {{id: {sid}-router, template: fiber-router, address: {net}.1}}")
    else:
        out.append(f"      - {{id: {sid}-ont, template: fiber-ont, address: {net}.1}}")
    out.append(f"      - {{id: {sid}-4g, template: cellular-router, address: {net}.2}}")
    out.append(f"      - {{id: {sid}-codec, template: codec, address: {net}.10}}")
    return out


if __name__ == "__main__":
    main()
