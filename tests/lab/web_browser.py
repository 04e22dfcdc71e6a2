"""A real browser and a real ``minietcd-lab web`` for the live view's tests (and for
scripts/lesson_screenshots.py).

The browser is Debian's chromium driven by Playwright's Python package; no browser is ever
downloaded. Both are installed by scripts/setup.sh: a test that needs them fails in CI (env
``CI`` set) when either is missing, and skips with the reason elsewhere.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


def missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (scripts/setup.sh: pip install -e '.[dev]')"
    if not (os.access(CHROMIUM, os.X_OK) or shutil.which("chromium")):
        return f"{CHROMIUM} is not installed (scripts/setup.sh: apt-get install chromium chromium-driver)"
    return None


def require_browser() -> None:
    reason = missing()
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must have it", pytrace=False)
    pytest.skip(reason)


@contextlib.contextmanager
def browser() -> Iterator[Any]:
    """A headless chromium (a Playwright ``Browser``)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


class WebServer:
    """``minietcd-lab web`` as a person starts it, on ``port``; stopped by its PID."""

    def __init__(self, lab_dir: Path, port: int, extra: Sequence[str] = ()) -> None:
        self.url = f"http://127.0.0.1:{port}/"
        env = {k: v for k, v in os.environ.items() if not k.startswith("ETCD")}
        env["MINIETCD_LAB_DIR"] = str(lab_dir)
        self.log = Path(lab_dir).parent / f"web-{port}.log"
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "minietcd.lab", "web", "--port", str(port), *extra],
                env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(self.url + "api/cluster", timeout=2):
                    return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise AssertionError(f"minietcd-lab web did not start:\n{self.log.read_text()}") from None
                time.sleep(0.1)

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGINT)  # as Ctrl-C: it saves its recording
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)


def roles(page: Any) -> dict[str, str]:
    """``{member: role}`` as the page draws them (data-member / data-role)."""
    got: dict[str, str] = page.evaluate(
        "Object.fromEntries([...document.querySelectorAll('#ring g.member')]"
        ".map(g => [g.dataset.member, g.dataset.role]))"
    )
    return got


def wait_until(page: Any, js: str, timeout: float = 60.0) -> None:
    page.wait_for_function(js, timeout=timeout * 1000)


def role_js(name: str, role: str, is_not: bool = False) -> str:
    """JS: member ``name`` is drawn with ``role`` (or, ``is_not``, with another)."""
    op = "!==" if is_not else "==="
    return f"document.querySelector('#ring g.member[data-member={name}]').dataset.role {op} '{role}'"


def one_leader_js(among: Sequence[str] | None = None) -> str:
    """JS: exactly one member drawn as leader (among ``among``, default all)."""
    sel = "#ring g.member"
    names = "null" if among is None else "[" + ",".join(f"'{n}'" for n in among) + "]"
    return (
        f"(() => {{ const names = {names}; const gs = [...document.querySelectorAll('{sel}')]"
        ".filter(g => !names || names.includes(g.dataset.member));"
        " return gs.length > 0 && gs.filter(g => g.dataset.role === 'leader').length === 1; })()"
    )


# --- lessons ---------------------------------------------------------------------------------------

ENDED = ("done", "finished", "failed", "timeout")


def lesson_state(page: Any) -> dict[str, str]:
    got: dict[str, str] = page.evaluate("({...document.getElementById('lesson-panel').dataset})")
    return got


def server_view(page: Any) -> str:
    """What the web server says it is doing (its busy action, the lesson, the story's end)."""
    url = page.url.split("#")[0].rstrip("/") + "/api/cluster"
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            state = json.loads(r.read())
    except OSError as e:
        return f"no answer from {url}: {e}"
    story = [f"{x.get('kind')}: {x.get('text', '')}" for x in state["timeline"][-12:]]
    return json.dumps({"busy": state["busy"], "lesson": state["lesson"], "story": story})


def run_lesson(
    page: Any,
    lesson_id: str,
    shots: Path | None = None,
    step_timeout: float = 240.0,
    why: list[str] | None = None,
) -> list[str]:
    """Start lesson ``lesson_id`` on the page and press next through it, as a person would;
    returns how each step ended. With ``shots``, screenshots of its first and last step are
    saved there as ``lesson-<id>-first.png`` and ``-last.png``. With ``why``, what the page
    said at the end of each step that did not end well is added to it."""
    page.select_option("#lesson-select", lesson_id)
    page.click("#lesson-start")
    page.wait_for_function(f"document.getElementById('lesson-panel').dataset.lesson === '{lesson_id}'")
    ended: list[str] = []
    while True:
        step = len(ended)
        try:
            page.wait_for_function(
                "(() => { const d = document.getElementById('lesson-panel').dataset;"
                f" return d.lesson === '{lesson_id}' && d.step === '{step}'"
                f" && {list(ENDED)}.includes(d.status); }})()",
                timeout=step_timeout * 1000,
            )
        except Exception as e:  # playwright's TimeoutError: say where the lesson stood
            raise AssertionError(
                f"{lesson_id}: step {step + 1} did not end within {step_timeout:.0f} s; the panel says"
                f" {lesson_state(page)}: {page.inner_text('#lesson')!r}; the server: {server_view(page)}"
            ) from e
        state = lesson_state(page)
        ended.append(state["status"])
        if why is not None and state["status"] not in ("done", "finished"):
            why.append(f"step {step + 1} {state['status']}: {page.inner_text('#lesson')}")
        time.sleep(1.0)  # let the picture catch up (the page draws 0.6 s behind)
        if shots is not None and step == 0:
            page.screenshot(path=str(shots / f"lesson-{lesson_id}-first.png"))
        if page.is_disabled("#lesson-next"):
            break
        page.click("#lesson-next")
    if shots is not None:
        page.screenshot(path=str(shots / f"lesson-{lesson_id}-last.png"))
    return ended
