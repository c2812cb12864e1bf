"""Pytest fixture: a link with known delay, jitter and loss between two namespaces.

::

    def test_x(impaired_link: MakeLink) -> None:
        link = impaired_link(delay_ms=40, jitter_ms=10, loss=0.05)
        out = link.a.exec(["fping", "-C", "5", "-t", "1000", "-q", link.b_ipv4], check=False)
        result = link.a.run(probe, Target(link.b_ipv4), Params())
        drops = link.impairer.stats().a_to_b.lost.echo

Register with ``pytest_plugins = ["tests.netlab.fixtures"]`` or, in one module,
``impaired_link = tests.netlab.fixtures.impaired_link``. Needs root and ``ip``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import pytest

from tests.netlab.impair import Config
from tests.netlab.lab import ImpairerHandle, Lab, Namespace, build_lab, start_impairer
from tests.peers._util import require_binary, require_root

__all__ = ["ImpairedLink", "MakeLink", "impaired_link"]


@dataclass(frozen=True, slots=True)
class ImpairedLink:
    """A running lab: namespaces, addresses, and the impairer between A and B."""

    lab: Lab
    impairer: ImpairerHandle

    @property
    def config(self) -> Config:
        return self.impairer.config

    @property
    def a(self) -> Namespace:
        return self.lab.a

    @property
    def b(self) -> Namespace:
        return self.lab.b

    @property
    def a_ipv4(self) -> str:
        return self.lab.a_ipv4

    @property
    def b_ipv4(self) -> str:
        return self.lab.b_ipv4

    @property
    def a_ipv6(self) -> str:
        return self.lab.a_ipv6

    @property
    def b_ipv6(self) -> str:
        return self.lab.b_ipv6


class MakeLink(Protocol):
    def __call__(
        self,
        delay_ms: float = 0.0,
        jitter_ms: float = 0.0,
        loss: float = 0.0,
        *,
        seed: int = 1,
        jitter_distribution: Literal["uniform", "normal"] = "uniform",
        reorder: bool = False,
        seed_neighbours: bool = True,
    ) -> ImpairedLink: ...


@contextlib.contextmanager
def impaired_link_context(workdir: Path) -> Iterator[MakeLink]:
    """The factory behind the fixture, for scripts (bench/) that are not pytest."""
    with contextlib.ExitStack() as stack:

        def make(
            delay_ms: float = 0.0,
            jitter_ms: float = 0.0,
            loss: float = 0.0,
            *,
            seed: int = 1,
            jitter_distribution: Literal["uniform", "normal"] = "uniform",
            reorder: bool = False,
            seed_neighbours: bool = True,
        ) -> ImpairedLink:
            config = Config(
                delay_ms=delay_ms,
                jitter_ms=jitter_ms,
                loss=loss,
                seed=seed,
                jitter_distribution=jitter_distribution,
                reorder=reorder,
            )
            lab = stack.enter_context(build_lab(seed_neighbours=seed_neighbours))
            impairer = stack.enter_context(start_impairer(lab, config, workdir))
            return ImpairedLink(lab, impairer)

        yield make


@pytest.fixture
def impaired_link(tmp_path: Path) -> Iterator[MakeLink]:
    """A factory: ``impaired_link(delay_ms, jitter_ms, loss, seed=...)`` -> ImpairedLink.

    Each call builds a fresh lab; all are torn down when the test ends.
    """
    require_root("network namespaces")
    require_binary("ip")
    with impaired_link_context(tmp_path / "netlab") as make:
        yield make
