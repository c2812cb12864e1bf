from __future__ import annotations

from exporters.prometheus import Family, Point, exposition, group, new_registry

GOLDEN = """\
# HELP diemcau_agent_pushes_total Pushes to central, by outcome.
# TYPE diemcau_agent_pushes_total counter
diemcau_agent_pushes_total{outcome="ok"} 3.0
diemcau_agent_pushes_total{outcome="failed"} 1.0
# HELP diemcau_icmp_rtt_seconds icmp rtt seconds
# TYPE diemcau_icmp_rtt_seconds gauge
diemcau_icmp_rtt_seconds{device="bt-phan-thiet-phu-thuy-ont",stat="avg"} 0.0123
"""


def test_families_are_built_fresh_from_each_snapshot() -> None:
    calls = []

    def snapshot() -> list[Family]:
        calls.append(1)
        pts = [
            Point(
                "diemcau_icmp_rtt_seconds",
                (("device", "bt-phan-thiet-phu-thuy-ont"), ("stat", "avg")),
                0.0123,
            ),
            Point("diemcau_agent_pushes_total", (("outcome", "ok"),), 3),
            Point("diemcau_agent_pushes_total", (("outcome", "failed"),), 1),
        ]
        return group(pts, {"diemcau_agent_pushes_total": "Pushes to central, by outcome."})

    registry = new_registry(snapshot)
    assert exposition(registry).decode() == GOLDEN
    exposition(registry)
    assert len(calls) == 2


def test_utf8_label_values_survive() -> None:
    registry = new_registry(
        lambda: [
            Family(
                "diemcau_site_info",
                "Site",
                "info",
                [Point("diemcau_site_info", (("name", "UBND phường Phú Thủy"),), 1)],
            )
        ]
    )
    text = exposition(registry).decode("utf-8")
    assert 'diemcau_site_info{name="UBND phường Phú Thủy"} 1.0' in text
