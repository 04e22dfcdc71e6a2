"""The web server of ``minietcd-lab web``: the page, its assets and a small JSON API.

=============================  ===================================================================
``GET /``                      the page (``static/index.html``; assets under ``/static/``)
``GET /api/cluster``           the page's state: the newest frame (members, links, leader), the
                               story and the messages, each numbered; ``?frames_after=N``,
                               ``timeline_after=N``, ``messages_after=N`` return only newer ones
``POST /api/action``           a control (``{"action": "kill", "members": ["n1"]}``: actions.py);
                               answers ``{"ok", "text", "cli"}`` once the lab has done it
``GET /api/lessons``           the guided lessons; ``POST /api/lesson`` ``{"id": ...}`` starts
                               one, ``POST /api/lesson/next`` moves on, ``/api/lesson/stop`` ends
``GET /api/recording``         the run so far as a recording file (recording.py), to download;
                               with ``--replay`` the recording being played
=============================  ===================================================================

With ``--replay FILE`` there is no cluster: the page plays the file, and the controls are off.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import signal
import time
import webbrowser
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Final

from aiohttp import web

from minietcd.errors import LabError
from minietcd.lab.ports import PortPlan
from minietcd.lab.web import recording
from minietcd.lab.web.actions import Actions, Lab
from minietcd.lab.web.collector import Collector, Stage
from minietcd.lab.web.lessons import LessonRunner

DEFAULT_PORT: Final = 8380
MESSAGE_WINDOW: Final = 10.0  # seconds of messages a first look at /api/cluster gets
TIMELINE_FIRST: Final = 300  # story items a first look gets
STATIC: Final = "static"


def static_dir() -> Path:
    return Path(str(resources.files("minietcd.lab.web") / STATIC))


def _int(request: web.Request, name: str) -> int | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    try:
        return max(0, int(raw))
    except ValueError:
        raise web.HTTPBadRequest(text=f"{name} must be a whole number") from None


@dataclass(slots=True)
class LiveView:
    lab: Lab
    stage: Stage
    actions: Actions
    lessons: LessonRunner

    def state(self, frames_after: int | None, timeline_after: int | None,
              messages_after: int | None) -> dict[str, Any]:
        now = time.time()
        p = self.stage.picture
        first = timeline_after is None
        timeline = p.timeline_after(timeline_after or 0)
        if first:
            timeline = timeline[-TIMELINE_FIRST:]
        messages = p.messages_after(messages_after or 0, since=now - MESSAGE_WINDOW)
        return {
            "mode": "live",
            "now": now,
            "frame": self.stage.last_frame,
            "frames": self.stage.frames_after(frames_after or 0) if frames_after is not None else [],
            "timeline": timeline,
            "timeline_seq": p.last_timeline_seq,
            "messages": messages,
            "message_seq": p.last_message_seq,
            "busy": self.actions.running,
            "lesson": self.lessons.state(),
            "lab_dir": str(self.lab.lab_dir),
        }


def _json(body: Any, status: int = 200) -> web.Response:
    return web.json_response(body, status=status, dumps=lambda x: json.dumps(x, separators=(",", ":")))


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(text="the body must be a JSON object") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="the body must be a JSON object")
    return body


def _common(app: web.Application) -> None:
    root = static_dir()

    async def index(request: web.Request) -> web.FileResponse:
        return web.FileResponse(root / "index.html", headers={"Cache-Control": "no-cache"})

    app.router.add_get("/", index)
    app.router.add_static("/static/", root, append_version=False)


def live_app(view: LiveView) -> web.Application:
    app = web.Application()
    _common(app)

    async def cluster(request: web.Request) -> web.Response:
        return _json(view.state(_int(request, "frames_after"), _int(request, "timeline_after"),
                                _int(request, "messages_after")))

    async def action(request: web.Request) -> web.Response:
        spec = await _body(request)
        try:
            out = await view.actions.run(spec, source="page")
        except LabError as e:
            return _json({"ok": False, "text": str(e).splitlines()[0]}, status=400)
        return _json({"ok": out.ok, "text": out.text, "cli": out.cli, "seconds": round(out.seconds, 3)})

    async def lessons(request: web.Request) -> web.Response:
        return _json(view.lessons.catalogue())

    async def lesson_start(request: web.Request) -> web.Response:
        body = await _body(request)
        try:
            view.lessons.start(str(body.get("id", "")))
        except LabError as e:
            return _json({"ok": False, "text": str(e)}, status=400)
        return _json({"ok": True, "lesson": view.lessons.state()})

    async def lesson_next(request: web.Request) -> web.Response:
        try:
            view.lessons.next()
        except LabError as e:
            return _json({"ok": False, "text": str(e)}, status=409)
        return _json({"ok": True, "lesson": view.lessons.state()})

    async def lesson_stop(request: web.Request) -> web.Response:
        await view.lessons.stop()
        return _json({"ok": True})

    async def download(request: web.Request) -> web.Response:
        rec = recording.from_stage(view.stage, title=f"minietcd-lab web: {view.lab.lab_dir}")
        name = time.strftime("minietcd-lab-%Y%m%d-%H%M%S.json")
        return web.Response(body=recording.dumps(rec), content_type="application/json",
                            headers={"Content-Disposition": f'attachment; filename="{name}"'})

    app.router.add_get("/api/cluster", cluster)
    app.router.add_post("/api/action", action)
    app.router.add_get("/api/lessons", lessons)
    app.router.add_post("/api/lesson", lesson_start)
    app.router.add_post("/api/lesson/next", lesson_next)
    app.router.add_post("/api/lesson/stop", lesson_stop)
    app.router.add_get("/api/recording", download)
    return app


def replay_app(rec: dict[str, Any], source: str) -> web.Application:
    app = web.Application()
    _common(app)
    body = recording.dumps(rec)

    async def cluster(request: web.Request) -> web.Response:
        frames = rec["frames"]
        return _json({
            "mode": "replay",
            "title": rec.get("title", ""),
            "source": source,
            "now": frames[-1]["t"],
            "frame": frames[0],
            "frames": [],
            "timeline": [],
            "messages": [],
            "lesson": None,
        })

    async def download(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    async def refused(request: web.Request) -> web.Response:
        return _json({"ok": False, "text": "this page replays a recording: there is no cluster to act on"},
                     status=409)

    app.router.add_get("/api/cluster", cluster)
    app.router.add_get("/api/recording", download)
    async def no_lessons(request: web.Request) -> web.Response:
        return _json([])

    app.router.add_get("/api/lessons", no_lessons)
    for path in ("/api/action", "/api/lesson", "/api/lesson/next", "/api/lesson/stop"):
        app.router.add_post(path, refused)
    return app


def _stop_on_signals() -> None:
    """SIGINT (Ctrl-C) and SIGTERM end the server cleanly (a recording is saved), also when it
    was started in the background, where a shell leaves SIGINT ignored."""
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    if main is None:
        return
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, main.cancel)


async def _serve(app: web.Application, host: str, port: int, announce: Callable[[str], None],
                 open_browser: bool) -> web.AppRunner:
    _stop_on_signals()
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError as e:
        await runner.cleanup()
        why = "address already in use" if e.errno == errno.EADDRINUSE else (e.strerror or str(e))
        raise LabError(f"cannot listen on {host}:{port}: {why} (choose another with --port)") from None
    url = f"http://{host}:{port}/"
    announce(url)
    if open_browser:
        with contextlib.suppress(Exception):
            webbrowser.open(url)
    return runner


async def run_live(
    lab_dir: Path,
    *,
    compose: bool = False,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    open_browser: bool = False,
    record: Path | None = None,
    inputs_log: Path | None = None,
    lesson_pace: str = "teach",
    ports: PortPlan | None = None,
    announce: Callable[[str], None] = print,
) -> None:
    """Serve the live view until cancelled; with ``record``, save the run there every 10 s and
    at the end. ``ports``: the port range clusters started from the page use (--port-base)."""
    log_file = open(inputs_log, "w") if inputs_log is not None else None  # noqa: SIM115
    stage = Stage(log_file)
    lab = Lab(lab_dir, compose, ports)
    actions = Actions(lab, stage)
    lessons = LessonRunner(actions, stage, pace=lesson_pace)
    view = LiveView(lab, stage, actions, lessons)
    collector = Collector(lab_dir, stage)
    runner = await _serve(live_app(view), host, port, announce, open_browser)
    tasks = [asyncio.create_task(collector.run()), asyncio.create_task(lessons.watch_controllers())]
    if record is not None:
        tasks.append(asyncio.create_task(_keep_saving(stage, record, str(lab_dir))))
    try:
        await asyncio.gather(*tasks)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await lessons.stop()
        if record is not None:
            recording.save(record, recording.from_stage(stage, title=f"minietcd-lab web: {lab_dir}"))
        await runner.cleanup()
        if log_file is not None:
            log_file.close()


async def _keep_saving(stage: Stage, path: Path, title: str) -> None:
    while True:
        await asyncio.sleep(10.0)
        rec = recording.from_stage(stage, title=f"minietcd-lab web: {title}")
        await asyncio.to_thread(recording.save, path, rec)


async def run_replay(
    path: Path,
    *,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    open_browser: bool = False,
    announce: Callable[[str], None] = print,
) -> None:
    rec = recording.load(path)
    runner = await _serve(replay_app(rec, str(path)), host, port, announce, open_browser)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
