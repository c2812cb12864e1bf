"""The ``diemcau`` command: the one place that sees every package (the composition root)."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import os
import sys
import typing
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, get_args, get_origin

from inventory.errors import ConfigError, Issue
from inventory.secrets import SecretRef

EXIT_OK, EXIT_PROBLEM, EXIT_USAGE = 0, 1, 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args, rest = parser.parse_known_args(argv)
    if rest and getattr(args, "func", None) not in (_cmd_probe, _cmd_discover):
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not hasattr(args, "func"):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        code: int = args.func(args, rest)
        return code
    except ConfigError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="diemcau", description=__doc__)
    p.add_argument(
        "--log-level",
        default=os.environ.get("DIEMCAU_LOG_LEVEL", "warning"),
        choices=["debug", "info", "warning", "error"],
    )
    sub = p.add_subparsers(metavar="COMMAND")

    inv = sub.add_parser("inventory", help="check, show and import the inventory")
    isub = inv.add_subparsers(metavar="ACTION")
    v = isub.add_parser("validate", help="check config or inventory files; exit 2 on problems")
    v.add_argument("paths", nargs="+", metavar="FILE")
    v.set_defaults(func=_cmd_validate)
    s = isub.add_parser("show", help="the region tree with site and device counts")
    s.add_argument("paths", nargs="*", metavar="PATH", help="inventory files or folders")
    s.add_argument("-c", "--config", help="a config file (its inventory is shown)")
    s.add_argument("--json", action="store_true")
    s.add_argument("--depth", type=int, default=3, help="levels of the tree to print")
    s.set_defaults(func=_cmd_show)
    c = isub.add_parser("import-csv", help="turn a spreadsheet of sites into inventory YAML")
    c.add_argument("csv", metavar="FILE")
    c.add_argument(
        "--regions",
        nargs="*",
        default=[],
        metavar="PATH",
        help="inventory files whose regions the sites must belong to",
    )
    c.add_argument("-o", "--output", help="write here (atomically) instead of stdout")
    c.set_defaults(func=_cmd_import_csv)

    pr = sub.add_parser(
        "probe",
        help="run one probe now",
        description="Run one probe now. Probe options come from the probe's parameters: "
        "see 'diemcau probe KIND --help-params'. Exit 0 up, 1 degraded or down, 2 usage.",
    )
    pr.add_argument("kind", help="icmp, tcp, http, snmp, ssh")
    pr.add_argument("target", nargs="?", help="address or DNS name")
    pr.add_argument("--timeout", type=float, default=10.0, help="deadline in seconds")
    pr.add_argument("--json", action="store_true", help="print the result as JSON")
    pr.add_argument("--help-params", action="store_true", help="list the probe's options")
    pr.set_defaults(func=_cmd_probe)

    ch = sub.add_parser("check", help="run every check of one site now")
    ch.add_argument("site")
    ch.add_argument("-c", "--config", required=True)
    ch.add_argument("--json", action="store_true")
    ch.add_argument("--concurrency", type=int, default=8)
    ch.set_defaults(func=_cmd_check)

    di = sub.add_parser(
        "discover",
        help="SNMP sweep of an address range; prints inventory YAML to paste",
        description="Sweep CIDR with SNMP (sysObjectID, sysDescr), identify each answering "
        "device by vendor and kind, and print inventory YAML. SNMP options as for "
        "'diemcau probe snmp' (see 'diemcau probe snmp --help-params').",
    )
    di.add_argument("cidr", help="e.g. 10.21.1.0/24 (at most a /16)")
    di.add_argument("--concurrency", type=int, default=32, help="addresses asked at once")
    di.add_argument("--timeout", type=float, default=120.0, help="deadline for the sweep")
    di.set_defaults(func=_cmd_discover)

    ag = sub.add_parser("agent", help="the site agent")
    asub = ag.add_subparsers(metavar="ACTION")
    ar = asub.add_parser("run", help="run the agent (SIGTERM stops, SIGHUP reloads)")
    ar.add_argument("-c", "--config", required=True)
    ar.set_defaults(func=_cmd_agent_run)
    ast = asub.add_parser("status", help="the running agent's states, backlog and delivery")
    ast.add_argument("-c", "--config", required=True)
    ast.add_argument("--json", action="store_true")
    ast.set_defaults(func=_cmd_agent_status)

    ce = sub.add_parser("central", help="the aggregator")
    csub = ce.add_subparsers(metavar="ACTION")
    cr = csub.add_parser("run", help="serve ingest and the APIs (SIGTERM stops)")
    cr.add_argument("-c", "--config", required=True)
    cr.set_defaults(func=_cmd_central_run)
    tok = csub.add_parser("token", help="agent and reader tokens")
    tsub = tok.add_subparsers(metavar="ACTION")
    tc = tsub.add_parser("create", help="make a token (printed once; only its hash is kept)")
    tc.add_argument("-c", "--config", required=True)
    who = tc.add_mutually_exclusive_group(required=True)
    who.add_argument("--agent", help="agent id (by default it owns the site of the same id)")
    who.add_argument("--reader", help="a read-only client's name, e.g. ioc")
    tc.add_argument(
        "--site", action="append", default=[], help="a site the agent may send for (repeat)"
    )
    tc.set_defaults(func=_cmd_token_create)
    tl = tsub.add_parser("list", help="tokens by id, role and sites (never the token)")
    tl.add_argument("-c", "--config", required=True)
    tl.set_defaults(func=_cmd_token_list)
    tr = tsub.add_parser("revoke", help="revoke a token by id, or all of an agent's")
    tr.add_argument("-c", "--config", required=True)
    rw = tr.add_mutually_exclusive_group(required=True)
    rw.add_argument("--id", dest="token_id")
    rw.add_argument("--agent")
    tr.set_defaults(func=_cmd_token_revoke)

    de = sub.add_parser("demo", help="central + the sample province's agents, simulated devices")
    de.add_argument("--workdir", default="var/demo", help="where the demo keeps its files")
    de.add_argument(
        "--duration",
        type=float,
        default=None,
        help="stop after this many seconds (default: run until Ctrl-C)",
    )
    de.add_argument("--seed", type=int, default=1, help="seed of the scripted faults")
    de.set_defaults(func=_cmd_demo)
    return p


class _LazyParamsTypes(Mapping[str, type]):
    """Probe kind -> its Params class, importing a kind's module only when a check names it.

    The loader asks only for the kinds the inventory uses, so an agent whose site has no
    SSH or HTTP check never imports asyncssh or aiohttp's client and cryptography for them.
    """

    def __getitem__(self, kind: str) -> type:
        import probes

        if kind not in probes.KINDS:
            raise KeyError(kind)
        return probes.module(kind).Params

    def __iter__(self) -> Iterator[str]:
        import probes

        return iter(probes.KINDS)

    def __len__(self) -> int:
        import probes

        return len(probes.KINDS)


def _params_types() -> Mapping[str, type]:
    return _LazyParamsTypes()


# The inventory subcommands' module is imported only for them: ``agent run`` never needs it.


def _cmd_validate(args: argparse.Namespace, _rest: list[str]) -> int:
    from diemcau import _inventory_cmds as inv_cmds

    return inv_cmds.validate(args.paths, _params_types())


def _cmd_import_csv(args: argparse.Namespace, _rest: list[str]) -> int:
    from diemcau import _inventory_cmds as inv_cmds

    return inv_cmds.import_csv(args.csv, args.regions, args.output)


def _cmd_show(args: argparse.Namespace, _rest: list[str]) -> int:
    from inventory.config import load_config
    from inventory.loader import load_inventory

    if args.config:
        inventory = load_config(args.config, _params_types()).inventory
    elif args.paths:
        inventory = load_inventory(args.paths, _params_types())
    else:
        print("give inventory paths or -c CONFIG", file=sys.stderr)
        return EXIT_USAGE
    from diemcau import _inventory_cmds as inv_cmds

    return inv_cmds.show(inventory, args.json, args.depth)


# --- probe ------------------------------------------------------------------------------


def _cmd_probe(args: argparse.Namespace, rest: list[str]) -> int:
    import probes

    if args.kind not in probes.KINDS:
        print(
            f"unknown probe kind {args.kind!r}; known: {', '.join(sorted(probes.KINDS))}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    mod = probes.module(args.kind)
    pp = _params_parser(args.kind, mod.Params)
    if args.help_params:
        pp.print_help()
        return EXIT_OK
    if not args.target:
        print("diemcau probe: a TARGET is needed", file=sys.stderr)
        return EXIT_USAGE
    pargs = pp.parse_args(rest)
    params = _build_params(mod.Params, vars(pargs))
    from agent.runner import run_probe
    from inventory.target import Target

    result = asyncio.run(run_probe(args.kind, Target(args.target), params, args.timeout))
    if args.json:
        print(json.dumps(result.to_json(), ensure_ascii=False, indent=2))
    else:
        print(_format_result(f"{args.kind} {args.target}", result))
    return EXIT_OK if result.status.value == "up" else EXIT_PROBLEM


def _params_parser(kind: str, cls: type) -> argparse.ArgumentParser:
    pp = argparse.ArgumentParser(prog=f"diemcau probe {kind} TARGET", add_help=False)
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        flag = "--" + f.name.replace("_", "-")
        doc = str(f.metadata.get("doc", ""))
        default = f.default if f.default is not dataclasses.MISSING else None
        choices = _literal_choices(tp)
        secret = _mentions(tp, SecretRef)
        if secret:
            doc += " (a ${ENV} or file: reference, or the value itself: it is kept out of logs)"
        if tp is bool:
            pp.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=doc)
        elif get_origin(tp) is tuple or _mentions(tp, tuple):
            pp.add_argument(
                flag,
                action="append",
                default=None,
                metavar="VALUE",
                help=f"{doc} (repeat, or comma-separate)",
            )
        else:
            shown = "" if secret or default is None else f" [default: {default}]"
            pp.add_argument(
                flag,
                default=None,
                choices=choices,
                help=doc + shown,
                metavar=None if choices else "VALUE",
            )
    return pp


def _literal_choices(tp: Any) -> list[str] | None:
    for t in (tp, *get_args(tp)):
        if get_origin(t) is typing.Literal:
            return [str(a) for a in get_args(t)]
    return None


def _mentions(tp: Any, target: Any) -> bool:
    return (
        tp is target or get_origin(tp) is target or any(_mentions(a, target) for a in get_args(tp))
    )


_secret_counter = 0


def _build_params(cls: type, values: dict[str, Any]) -> object:
    """Build Params from command-line strings with the config's own checks.

    A literal secret typed on the command line is moved into a private environment
    variable of this process and referenced from there, so the probe code only ever sees
    references and nothing prints the value.
    """
    global _secret_counter
    from inventory.schema import check
    from inventory.secrets import is_reference

    hints = typing.get_type_hints(cls)
    seps = {f.name: f.metadata.get("separator", ",") for f in dataclasses.fields(cls)}
    raw: dict[str, object] = {}
    for name, value in values.items():
        if value is None:
            continue
        tp = hints[name]
        if isinstance(value, list):
            sep = seps[name]
            items = [x for v in value for x in (v.split(sep) if sep else [v]) if x]
            if _mentions(tp, SecretRef):
                items = [_stash(x) if not is_reference(x) else x for x in items]
            raw[name] = items
        elif _mentions(tp, SecretRef) and isinstance(value, str) and not is_reference(value):
            raw[name] = _stash(value)
        else:
            raw[name] = value
    try:
        return check(cls, raw)
    except ConfigError as exc:
        raise ConfigError(
            [
                Issue("command line", None, "--" + i.path.replace("_", "-"), i.message)
                for i in exc.issues
            ]
        ) from None


def _stash(value: str) -> str:
    global _secret_counter
    _secret_counter += 1
    name = f"DIEMCAU_CLI_SECRET_{_secret_counter}"
    os.environ[name] = value
    return "${" + name + "}"


def _format_result(title: str, result: Any) -> str:
    lines = [
        f"{title}: {result.status.value.upper()} in {result.duration_seconds:.3f} s",
        f"  {result.reason}",
    ]
    for k, v in result.info:
        lines.append(f"  {k}: {v}")
    if result.samples:
        rows = [
            (s.name, ",".join(f"{k}={v}" for k, v in s.labels), _num(s.value))
            for s in result.samples
        ]
        w0 = max(len(r[0]) for r in rows)
        w1 = max(len(r[1]) for r in rows)
        lines.append("")
        lines.append(f"  {'METRIC':<{w0}}  {'LABELS':<{w1}}  VALUE")
        lines += [f"  {a:<{w0}}  {b:<{w1}}  {c}" for a, b, c in rows]
    return "\n".join(lines)


def _num(v: float) -> str:
    return str(int(v)) if v.is_integer() and abs(v) < 1e15 else f"{v:.6g}"


# --- discover ---------------------------------------------------------------------------


def _cmd_discover(args: argparse.Namespace, rest: list[str]) -> int:
    import yaml

    from probes import snmp
    from probes.snmp_discover import discover

    params = _build_params(snmp.Params, vars(_params_parser("snmp", snmp.Params).parse_args(rest)))
    assert isinstance(params, snmp.Params)
    tty = sys.stderr.isatty()

    def progress(done: int, total: int) -> None:
        if tty or done == total:
            width = 30
            filled = width * done // max(total, 1)
            end = "\n" if done == total else ""
            print(
                f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} addresses",
                end=end,
                file=sys.stderr,
                flush=True,
            )

    async def sweep() -> list[Any]:
        found = []
        async with asyncio.timeout(args.timeout):
            async for f in discover(args.cidr, params, args.concurrency, progress):
                found.append(f)
        return found

    try:
        found = asyncio.run(sweep())
    except ValueError as exc:
        print(f"diemcau discover: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except TimeoutError:
        print(
            f"diemcau discover: the sweep did not finish within {args.timeout:g} s", file=sys.stderr
        )
        return EXIT_PROBLEM
    print(f"# {len(found)} device(s) answered in {args.cidr}; paste under a site's devices:")
    print("devices:")
    for f in sorted(found, key=lambda f: _address_key(f.address)):
        print(f"  # {f.comment()}")
        text = yaml.safe_dump([f.to_inventory()], allow_unicode=True, sort_keys=False)
        print("\n".join("  " + line for line in text.rstrip().splitlines()))
    return EXIT_OK if found else EXIT_PROBLEM


def _address_key(address: str) -> tuple[int, str]:
    import ipaddress

    try:
        return (int(ipaddress.ip_address(address)), address)
    except ValueError:
        return (0, address)


# --- agent ------------------------------------------------------------------------------


def _load_agent(path: str) -> tuple[Any, Any]:
    from inventory.config import load_config

    cfg = load_config(path, _params_types())
    if cfg.agent is None:
        raise ConfigError([Issue(path, None, "agent", "the config has no agent section")])
    return cfg.agent, cfg.inventory.site(cfg.agent.site)


def _cmd_agent_run(args: argparse.Namespace, _rest: list[str]) -> int:
    from agent.daemon import run_until_signalled

    if args.log_level == "warning":  # a daemon logs its transitions
        logging.getLogger().setLevel(logging.INFO)
    logging.getLogger("asyncssh").setLevel(logging.WARNING)
    _load_agent(args.config)  # refuse a bad config before starting anything
    return asyncio.run(run_until_signalled(lambda: _load_agent(args.config)))


def _cmd_agent_status(args: argparse.Namespace, _rest: list[str]) -> int:
    import urllib.error
    import urllib.request

    from agent.daemon import format_status

    agent_cfg, _site = _load_agent(args.config)
    url = f"http://{agent_cfg.listen}/status"
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            status = json.loads(r.read().decode("utf-8"))
    except (OSError, urllib.error.URLError) as exc:
        print(
            f"no agent answering at {url}: {getattr(exc, 'reason', exc)}; "
            "is `diemcau agent run` running?",
            file=sys.stderr,
        )
        return EXIT_PROBLEM
    if args.json:
        print(json.dumps(status, ensure_ascii=False, indent=2))
    else:
        print(format_status(status))
    return EXIT_OK


# --- central ----------------------------------------------------------------------------


def _load_central(path: str) -> tuple[Any, Any]:
    from inventory.config import load_config

    # Central never imports the probes: check params stay plain mappings there.
    cfg = load_config(path)
    if cfg.central is None:
        raise ConfigError([Issue(path, None, "central", "the config has no central section")])
    return cfg.central, cfg.inventory


def _cmd_central_run(args: argparse.Namespace, _rest: list[str]) -> int:
    from central import cli as central_cli

    if args.log_level == "warning":
        logging.getLogger().setLevel(logging.INFO)
    config, inventory = _load_central(args.config)
    return central_cli.run(config, inventory)


def _cmd_token_create(args: argparse.Namespace, _rest: list[str]) -> int:
    from central import cli as central_cli

    config, inventory = _load_central(args.config)
    if args.reader:
        return central_cli.token_create(config, args.reader, (), role="reader", inventory=inventory)
    return central_cli.token_create(config, args.agent, args.site, inventory=inventory)


def _cmd_token_list(args: argparse.Namespace, _rest: list[str]) -> int:
    from central import cli as central_cli

    config, _inventory = _load_central(args.config)
    return central_cli.token_list(config)


def _cmd_token_revoke(args: argparse.Namespace, _rest: list[str]) -> int:
    from central import cli as central_cli

    config, _inventory = _load_central(args.config)
    return central_cli.token_revoke(config, token_id=args.token_id, agent_id=args.agent)


def _cmd_demo(args: argparse.Namespace, _rest: list[str]) -> int:
    from diemcau import demo

    # 133 agents share this process's log: the demo prints summaries instead.
    for name in ("agent.health", "agent.pusher", "agent.outbox"):
        logging.getLogger(name).setLevel(logging.ERROR)
    return demo.main(args.workdir, args.duration, args.seed)


# --- check ------------------------------------------------------------------------------


def _cmd_check(args: argparse.Namespace, _rest: list[str]) -> int:
    from agent.runner import run_probe
    from inventory.config import load_config
    from inventory.target import Target

    cfg = load_config(args.config, _params_types())
    node = cfg.inventory.get(args.site)
    if node is None or not hasattr(node, "devices"):
        print(f"no site {args.site!r} in {args.config}", file=sys.stderr)
        return EXIT_USAGE
    site = cfg.inventory.site(args.site)
    limit = asyncio.Semaphore(max(1, args.concurrency))

    async def one(dev: Any, chk: Any) -> tuple[Any, Any, Any]:
        async with limit:
            t = Target(dev.address, dev.id, site.id)
            return dev, chk, await run_probe(chk.kind, t, chk.params, chk.timeout_seconds)

    async def all_checks() -> list[tuple[Any, Any, Any]]:
        return list(await asyncio.gather(*(one(d, c) for d in site.devices for c in d.checks)))

    results = asyncio.run(all_checks())
    if args.json:
        print(
            json.dumps(
                [{"device": d.id, "check": c.name, **r.to_json()} for d, c, r in results],
                ensure_ascii=False,
                indent=2,
            )
        )
    else:
        print(f"{site.name} ({site.id})")
        rows = [
            (d.id, c.name, r.status.value.upper(), f"{r.duration_seconds:.2f}s", r.reason)
            for d, c, r in results
        ]
        widths = [
            max(len(r[i]) for r in [*rows, ("DEVICE", "CHECK", "STATUS", "TIME", "")])
            for i in range(4)
        ]
        head = ("DEVICE", "CHECK", "STATUS", "TIME", "REASON")
        for r in [head, *rows]:
            print("  ".join(f"{x:<{widths[i]}}" for i, x in enumerate(r[:4])) + "  " + r[4])
    bad = [r for _d, _c, r in results if r.status.value != "up"]
    return EXIT_PROBLEM if bad else EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
