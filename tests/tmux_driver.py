"""The tmux driver the console walks use (tests/tmux_walk.py, the crash-resume tests): a detached
session on a private tmux server (``Tmux``: start, send-keys, capture-pane), what is on its screen
(notifications, the footer, a cell's background colour), ``Walk`` — the walk's state, its steps and
notes, and its waits on what the screen shows (``wait``, ``wait_text``, ``wait_gone``), paging down
on a small terminal — and the clean-up: the rehearsals stopped, the mariadbd they left killed."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
F9_BYTES = ("1b", "5b", "32", "30", "7e")  # \e[20~ : F9 as tmux (TERM=screen) sends it
SGR = re.compile(r"\x1b\[([0-9;:]*)m")
ANY_ESC = re.compile(r"\x1b\[[0-9;:?]*[A-Za-z]")
# The tmux server (and so the console) starts with this environment: no stale size, no outer tmux.
CLEAN_ENV = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "TMUX", "TMUX_PANE")}


class WalkFailure(Exception):
    def __init__(self, step: str, message: str, capture: str = ""):
        super().__init__(f"{step}: {message}")
        self.step = step
        self.message = message
        self.capture = capture


# --- tmux ----------------------------------------------------------------------------------------


class Tmux:
    """One detached session on a private tmux server (``-L socket``)."""

    def __init__(self, socket: str, session: str):
        self.socket = socket
        self.session = session

    def cmd(self, *args: str, check: bool = True) -> str:
        # env given explicitly: os.environ, not the C-level environ, which some libraries change
        # (under pytest it carried COLUMNS=80 LINES=24 and the console drew 80x24 in a 160x50 pane).
        done = subprocess.run(["tmux", "-L", self.socket, "-f", "/dev/null", *args],
                              capture_output=True, text=True, timeout=20, env=CLEAN_ENV)
        if check and done.returncode != 0:
            raise RuntimeError(f"tmux {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def start(self, width: int, height: int, command: str, env: dict[str, str], cwd: Path) -> None:
        envs = [a for k, v in env.items() for a in ("-e", f"{k}={v}")]
        self.cmd("new-session", "-d", "-s", self.session, "-x", str(width), "-y", str(height), "-c", str(cwd),
                 *envs, command, ";", "set-option", "-g", "remain-on-exit", "on")

    def capture(self, escapes: bool = False, history: int = 0) -> str:
        args = ["capture-pane", "-p", "-t", self.session]
        if escapes:
            args.append("-e")
        if history:
            args += ["-J", "-S", f"-{history}"]
        return self.cmd(*args)

    def keys(self, *keys: str) -> None:
        self.cmd("send-keys", "-t", self.session, *keys)

    def type(self, text: str) -> None:
        self.cmd("send-keys", "-t", self.session, "-l", text)

    def raw(self, *hex_bytes: str) -> None:
        self.cmd("send-keys", "-t", self.session, "-H", *hex_bytes)

    def pane_pid(self) -> int | None:
        out = self.cmd("display-message", "-p", "-t", self.session, "#{pane_pid}", check=False).strip()
        return int(out) if out.isdigit() else None

    def socket_path(self) -> str:
        return self.cmd("display-message", "-p", "#{socket_path}", check=False).strip()

    def kill(self) -> None:
        path = self.socket_path()
        self.cmd("kill-server", check=False)
        if path and os.path.exists(path):
            try:
                os.unlink(path)
            except OSError:
                pass


# --- what is on screen ---------------------------------------------------------------------------


def toast_text(capture: str) -> str:
    """The notifications (right-hand boxes drawn with ▌) as one line, for wrapped messages."""
    parts = [line.rsplit("▌", 1)[1].strip() for line in capture.splitlines() if "▌" in line]
    return " ".join(p for p in parts if p)


def footer(capture: str) -> str:
    lines = [ln for ln in capture.splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def _rgb(spec: list[int]) -> tuple[int, int, int] | None:
    """An SGR background spec (after 48) as RGB."""
    if len(spec) >= 4 and spec[0] == 2:
        return spec[1], spec[2], spec[3]
    if len(spec) >= 2 and spec[0] == 5:
        n = spec[1]
        basic = [(0, 0, 0), (128, 0, 0), (0, 128, 0), (128, 128, 0), (0, 0, 128), (128, 0, 128), (0, 128, 128),
                 (192, 192, 192), (128, 128, 128), (255, 0, 0), (0, 255, 0), (255, 255, 0), (0, 0, 255),
                 (255, 0, 255), (0, 255, 255), (255, 255, 255)]
        if n < 16:
            return basic[n]
        if n < 232:
            levels = (0, 95, 135, 175, 215, 255)
            n -= 16
            return levels[n // 36], levels[(n // 6) % 6], levels[n % 6]
        grey = 8 + 10 * (n - 232)
        return grey, grey, grey
    return None


def background_at(line: str, needle: str) -> tuple[int, int, int] | None:
    """The background colour of the first character of ``needle`` in a capture line with escapes."""
    bg: tuple[int, int, int] | None = None
    visible = ""
    pos = 0
    for m in ANY_ESC.finditer(line):
        visible += line[pos:m.start()]
        if needle in visible:
            return bg
        if m.group(0).endswith("m"):
            codes = [int(c) if c.isdigit() else 0 for c in re.split("[;:]", m.group(0)[2:-1]) or ["0"]]
            i = 0
            while i < len(codes):
                c = codes[i]
                if c in (38, 48, 58):  # extended colours: 5;n or 2;r;g;b follow
                    if c == 48:
                        bg = _rgb(codes[i + 1:])
                    i += 5 if codes[i + 1:i + 2] == [2] else 3
                    continue
                if c in (0, 49):
                    bg = None
                elif 40 <= c <= 47:
                    bg = _rgb([5, c - 40])
                elif 100 <= c <= 107:
                    bg = _rgb([5, c - 100 + 8])
                i += 1
        pos = m.end()
    visible += line[pos:]
    return bg if needle in visible else None


def is_red(rgb: tuple[int, int, int] | None) -> bool:
    if rgb is None:
        return False
    r, g, b = rgb
    return r >= 80 and r > 2 * g and r > 2 * b


# --- the walk's state and its waits -------------------------------------------------------------


@dataclass
class Walk:
    tmux: Tmux
    tmp: Path
    t0: float = field(default_factory=time.monotonic)
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    last: str = ""
    our_pids: set[int] = field(default_factory=set)
    size: tuple[int, int] = (160, 50)  # the terminal's columns and rows (--size)
    say: Callable[[str], None] = print
    command: str = ""  # what the session runs (the rehearsal), to start it again after a kill -9
    history: str = ""  # the pane's output before that restart (a respawned pane starts a new one)

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def step(self, name: str, detail: str = "") -> None:
        self.timings[name] = round(self.elapsed(), 2)
        self.say(f"[{self.elapsed():6.1f}s] {name}" + (f" — {detail}" if detail else ""))

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)
            self.say(f"         note: {text}")

    def grab(self) -> str:
        self.last = self.tmux.capture()
        self.track_servers()
        return self.last

    def track_servers(self, root: int | None = None) -> None:
        """Remember every mariadbd this rehearsal started (the self-test's sandbox lives in /tmp)."""
        root = root or self.tmux.pane_pid()
        if root is None:
            return
        parents: dict[int, int] = {}
        names: dict[int, str] = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat", encoding="utf-8", errors="replace") as fh:
                    stat = fh.read()
                names[int(entry)] = stat[stat.index("(") + 1:stat.rindex(")")]
                parents[int(entry)] = int(stat[stat.rindex(")") + 2:].split()[1])
            except (OSError, ValueError):
                continue
        for pid in parents:
            p, seen = pid, 0
            while p > 1 and seen < 64:
                if p == root:
                    if names.get(pid, "").startswith(("mariadbd", "mysqld")):
                        self.our_pids.add(pid)
                    break
                p, seen = parents.get(p, 0), seen + 1

    def scan(self, rx: re.Pattern[str], screen: str) -> re.Match[str] | None:
        """On a terminal smaller than 160x50, what is looked for may be below the fold: when the
        footer says "PgDn More", page down as a person would (up to 8 pages) looking for it, and
        back to the top (Home) when it is not there. The screen stays where it was found."""
        if self.size >= (160, 50) or "PgDn More" not in "\n".join(screen.splitlines()[-2:]):
            return None
        for _ in range(8):
            self.tmux.keys("PageDown")
            time.sleep(0.25)
            page = self.grab()
            m = rx.search(page)
            if m:
                return m
            if "PgDn More" not in "\n".join(page.splitlines()[-2:]):
                break
        self.tmux.keys("Home")
        time.sleep(0.25)
        self.grab()
        return None

    def wait(self, step: str, what: str, ok: Callable[[str], bool], timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while True:
            screen = self.grab()
            if "Traceback (most recent call last)" in screen or "╭─ Traceback" in screen:
                raise WalkFailure(step, "a traceback is on screen", screen)
            if "Nothing was lost; details in" in toast_text(screen):
                self.note(f"{step}: an error toast: {toast_text(screen)[:300]}")
            if ok(screen):
                return screen
            if "[tmux-walk] exit=" in screen:
                raise WalkFailure(step, f"the rehearsal exited while waiting for {what}",
                                  self.tmux.capture(history=300))
            if time.monotonic() > deadline:
                size = self.tmux.cmd("display-message", "-p", "-t", self.tmux.session,
                                     "#{pane_width}x#{pane_height}", check=False).strip()
                raise WalkFailure(step, f"waited {timeout:g} s for {what} (pane {size})", screen)
            time.sleep(0.2)

    def wrapped(self, pattern: str) -> str:
        """On a terminal smaller than 160x50 a sentence may wrap at any of its spaces (the next
        line indented): each space of the pattern matches a run of white space there."""
        return pattern if self.size >= (160, 50) else re.sub(r"(?<!\\) ", r"\\s+", pattern)

    def wait_text(self, step: str, pattern: str, timeout: float, toast: bool = False) -> re.Match[str]:
        rx = re.compile(self.wrapped(pattern))
        found: list[re.Match[str]] = []
        patient = time.monotonic() + min(3.0, timeout / 3)  # what a key brings up takes a moment to draw

        def ok(screen: str) -> bool:
            m = rx.search(toast_text(screen) if toast else screen)
            if m is None and not toast and time.monotonic() > patient:
                m = self.scan(rx, screen)
            if m:
                found.append(m)
            return m is not None

        self.wait(step, f"/{pattern}/" + (" in a notification" if toast else ""), ok, timeout)
        return found[-1]

    def wait_gone(self, step: str, pattern: str, timeout: float) -> str:
        rx = re.compile(self.wrapped(pattern))
        if self.size >= (160, 50):
            return self.wait(step, f"/{pattern}/ to go away", lambda s: rx.search(s) is None, timeout)
        # A smaller terminal: a line scrolled off is not gone. Back to the top (Home) before each look,
        # and gone only when two looks half a second apart agree (a dialog closing lets Home through).
        absent: list[float] = []

        def gone(screen: str) -> bool:
            if rx.search(screen) is not None:
                absent.clear()
                self.tmux.keys("Home")
                return False
            absent.append(time.monotonic())
            if absent[-1] - absent[0] >= 0.5:
                return True
            self.tmux.keys("Home")
            time.sleep(0.3)
            return False

        return self.wait(step, f"/{pattern}/ to go away", gone, timeout)

    def frame_bg(self) -> tuple[tuple[int, int, int] | None, tuple[int, int, int] | None]:
        """(frame, banner) backgrounds: the cell of the T clock, and of the banner's first letter."""
        lines = self.tmux.capture(escapes=True).splitlines()
        frame = next((background_at(ln, "drill") for ln in lines[:4] if "drill" in ln), None)
        banner = next((background_at(ln, "KILL SWITCH ACTIVE —") for ln in lines[:8]
                       if "KILL SWITCH ACTIVE —" in ln), None)
        return frame, banner


def rehearsal_pid(w: Walk) -> int | None:
    """The rehearsal's own process (the console runs in it): the pane's shell's child."""
    shell = w.tmux.pane_pid()
    if shell is None:
        return None
    try:
        with open(f"/proc/{shell}/task/{shell}/children", encoding="ascii") as fh:
            children = [int(p) for p in fh.read().split()]
    except OSError:
        return None
    return children[0] if children else None


def leftover_servers(w: Walk) -> list[str]:
    """mariadbd processes under the temp dir, or started by the rehearsal (its self-test's), alive."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                args = fh.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "mariadbd" not in args and "mysqld" not in args:
            continue
        if str(w.tmp) in args or int(entry) in w.our_pids:
            out.append(f"{entry} {args[:160]}")
    return out


# --- clean-up ------------------------------------------------------------------------------------


def stop_rehearsal(w: Walk, session: str) -> None:
    """Let a rehearsal still running stop what it started: Ctrl+Q (the console), else Ctrl+C."""
    tmux = Tmux(w.tmux.socket, session)
    try:
        tmux.cmd("has-session", "-t", session)
    except (RuntimeError, subprocess.SubprocessError):
        return
    for key, grace in (("C-q", 8.0), ("C-c", 15.0)):
        try:
            if "[tmux-walk] exit=" in tmux.capture():
                return
            w.track_servers(tmux.pane_pid())
            tmux.keys(key)
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline:
                if "[tmux-walk] exit=" in tmux.capture():
                    return
                time.sleep(0.3)
        except (RuntimeError, subprocess.SubprocessError):
            return


def cleanup(w: Walk) -> None:
    """Stop the rehearsals, kill the private tmux server, any mariadbd they left (by pid) and those
    servers' sandbox dirs under /tmp; remove the temp dir."""
    for session in ("mate", "small", "walk"):
        stop_rehearsal(w, session)
    sandboxes = {m.group(1) for line in leftover_servers(w)
                 if (m := re.search(r"--datadir=(/tmp/cc-sbx-[^/ ]+)/", line))}
    w.tmux.kill()
    for attempt in range(40):
        left = leftover_servers(w)
        if not left:
            break
        for line in left:
            try:
                os.kill(int(line.split()[0]), signal.SIGTERM if attempt < 20 else signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.5)
    for path in sandboxes:
        shutil.rmtree(path, ignore_errors=True)
    shutil.rmtree(w.tmp, ignore_errors=True)
