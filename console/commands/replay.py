"""``canary-console replay``: a finished run, or exported samples, judged under a profile."""

from __future__ import annotations

import argparse
import json
from typing import Any

from console.commands import EXIT_FAILED, EXIT_OK, CliError, _plan, _store, _tenant, resolve_run


def _replay_samples(args: argparse.Namespace, profile: Any) -> int:
    """``replay --samples FILE``: judge exported samples, no store, no server."""
    from datetime import UTC, datetime

    from engine.domain.text import for_terminal
    from engine.flows.samples_file import SamplesError, judge_samples, parse_samples

    change_at = None
    if args.change_at:
        try:
            change_at = datetime.fromisoformat(args.change_at.strip().replace("Z", "+00:00"))
        except ValueError:
            raise CliError(f"--change-at {args.change_at!r} is not an ISO-8601 time (e.g. 2026-12-03T08:30:00Z)") from None
        change_at = change_at if change_at.tzinfo else change_at.replace(tzinfo=UTC)
    shown = for_terminal(str(args.samples))
    try:
        with open(args.samples, encoding="utf-8-sig") as fh:  # a byte-order mark (Windows exports) is skipped
            text = fh.read()
    except FileNotFoundError:
        raise CliError(f"samples file not found: {shown}") from None
    except UnicodeDecodeError as exc:
        raise CliError(f"cannot read {shown}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset "
                       f"{exc.start}): a samples file is JSON Lines in UTF-8") from None
    except OSError as exc:
        raise CliError(f"cannot read {shown}: {exc.strerror or exc}") from None
    try:
        j = judge_samples(parse_samples(text, profile), profile, change_at)
    except SamplesError as exc:
        raise CliError(f"{shown}: {for_terminal(str(exc))}") from None
    v = j.verdict
    print(f"{shown} under profile {for_terminal(profile.name)}: {v.verdict}")
    print(f"  baseline: {j.baseline_samples} samples before {j.change_at.isoformat()}; window: "
          f"{j.window_samples} samples" + (f"; stopped at {j.stopped_at.isoformat()}" if j.stopped_at else ""))
    for c in v.criteria:
        mark = {True: "met", False: "NOT MET", None: "unknown"}[c.met] if c.applicable else "n/a"
        print(f"  [{mark:>7}] {c.name}: {c.value} (needs {c.threshold}) — {c.rule}")
        if c.evidence:
            print(f"            evidence: {c.evidence}")
    for r in v.reasons:
        print(f"  reason: {r}")
    for w in v.warnings:
        print(f"  warning: {w}")
    for e in j.evaluator.state.of_kind("incident"):
        print(f"  incident at +{e.t_s / 60:.1f} min: {e.detail}")
    if args.json:
        print(json.dumps(j.as_json(), default=str))
    return EXIT_OK


def cmd_replay(args: argparse.Namespace) -> int:
    """Re-evaluate a finished run's stored samples under another threshold profile."""
    import tomllib

    from engine.domain.thresholds import Profile, ProfileError, profile_from_overrides
    from engine.flows.monitor import replay

    plan = _plan(args.plan)
    profile = Profile()
    if args.profile:
        try:
            data = tomllib.loads(open(args.profile, encoding="utf-8").read())
        except FileNotFoundError:
            raise CliError(f"profile file not found: {args.profile}") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise CliError(f"profile {args.profile} is not valid TOML: {exc}") from None
        try:
            profile = profile_from_overrides(data.get("thresholds", data), name=args.profile)
        except ProfileError as exc:
            raise CliError("the profile cannot be used:\n" + "\n".join(f"  - {p}" for p in exc.problems)) from None
    if args.samples:
        return _replay_samples(args, profile)
    if not args.run:
        raise CliError("replay needs a RUN id (with --plan or --store) or --samples FILE")
    store = _store(args, plan)
    tenant = _tenant(args, plan, required=True)
    args.run = resolve_run(store, tenant, args.run).id  # the whole id, or the start of it the screens show
    if not args.profile:  # the run's own lines: tightened after a WARNING size gate (docs/thresholds.md)
        from engine.domain.sizegate import profile_for
        from engine.flows.prechecks import run_gate

        gate = run_gate(store, tenant, args.run)
        profile = profile_for(profile, *gate) if gate else profile
    try:
        verdict, ev = replay(store, tenant, args.run, profile)
    except LookupError as exc:
        raise CliError(str(exc), EXIT_FAILED) from None
    if args.json:
        print(json.dumps(verdict.as_dict() | {"profile": profile.name}, indent=2, default=str))
        return EXIT_OK
    print(f"run {args.run} under profile {profile.name}: {verdict.verdict}")
    for c in verdict.criteria:
        mark = {True: "met", False: "NOT MET", None: "unknown"}[c.met] if c.applicable else "n/a"
        extra = f"  n={c.n}" if c.n is not None else ""
        extra += f"  {c.interval}" if c.interval else ""
        print(f"  [{mark:>7}] {c.name}: {c.value} (needs {c.threshold}) — {c.rule}{extra}")
    for r in verdict.reasons:
        print(f"  reason: {r}")
    print("  checkpoints: " + ", ".join(f"{cp.label} {'ok' if cp.metrics_ok else 'NOT ok'}" for cp in ev.checkpoints))
    print(f"  next step: {verdict.next_step}")
    return EXIT_OK
