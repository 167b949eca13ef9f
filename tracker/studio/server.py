"""The studio's HTTP API and page (FastAPI). Every request needs the token: ``Authorization: Bearer
TOKEN``, or ``?token=TOKEN`` (the page and its images). No path parameter reaches the file system: the
page's files are read from the package once, frames come from the one configured video.

    GET    /api/video                          {"width", "height", "num_frames", "fps", "warning", "video_frames"}
    GET    /api/frames/{i}.jpg                 frame i as JPEG
    GET    /api/objects                        objects, labels and their prompts
    PUT    /api/objects/{id}                   {"label"}: add or rename an object
    DELETE /api/objects/{id}
    GET    /api/objects/{id}/prompts/{frame}   the prompt and its preview
    PUT    /api/objects/{id}/prompts/{frame}   {"points": [[x, y, 1|0]], "box": [x0, y0, x1, y1] | null,
                                               "label": str | null} -> {"mask": RLE, "score"}
    DELETE /api/objects/{id}/prompts/{frame}
    GET    /api/prompts.yaml                   the prompts in the CLI's schema
    POST   /api/save                           writes OUTPUT_DIR/prompts.yaml -> {"path", "command"}
    POST   /api/track                          -> {"job"} (409 while one runs)
    GET    /api/track/{job}                    {"state", "frames_done", "num_frames", "output_dir", "error"}
    GET    /api/track/{job}/frames/{i}         {"frame", "objects": [{"id", "mask": RLE, "score"}]}
"""

from __future__ import annotations

import hmac
import html
import json
import mimetypes
import secrets
from collections.abc import Iterator
from importlib.resources import files
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..io.prompts import check_label
from ..io.source import SourceError
from .session import Studio, StudioError

_ASSETS = {"studio.js": "text/javascript", "studio.css": "text/css"}


def new_token() -> str:
    return secrets.token_urlsafe(24)


def _label(value: str | None) -> str | None:
    return None if value is None else check_label(value)


class PromptBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    points: list[tuple[float, float, int]] = Field(default_factory=list, max_length=1000)
    box: tuple[float, float, float, float] | None = None
    label: str | None = None

    @field_validator("label")
    @classmethod
    def _valid_label(cls, value: str | None) -> str | None:
        return _label(value)


class LabelBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: str | None = None

    @field_validator("label")
    @classmethod
    def _valid_label(cls, value: str | None) -> str | None:
        return _label(value)


class LimitBody:
    """Refuse request bodies over ``limit`` bytes with 413, whether or not Content-Length is sent."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, int(limit)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await _send_json(send, 413, f"request body over {self.limit} bytes")
            return
        # The whole body is read here, before the app sees it: FastAPI turns an error raised while it reads
        # a body into 400, so a chunked body over the limit must be refused before that.
        chunks: list[bytes] = []
        seen = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            seen += len(chunks[-1])
            if seen > self.limit:
                await _send_json(send, 413, f"request body over {self.limit} bytes")
                return
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def _send_json(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _one_line_validation(e: RequestValidationError) -> str:
    errors = e.errors()
    if not errors:
        return "invalid request"
    first = errors[0]
    where = ".".join(str(x) for x in first.get("loc", ()) if x != "body") or "body"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {first.get('msg', 'invalid')}{more}"


def create_app(studio: Studio, token: str, max_body: int = 256 * 1024) -> ASGIApp:
    """The studio's ASGI app: FastAPI routes behind the token check and the body size limit."""
    app = FastAPI(title="tracker studio", docs_url=None, redoc_url=None, openapi_url=None)
    expected = token.encode()
    static = files("tracker.studio") / "static"
    page = (static / "index.html").read_text()
    assets = {name: (static / name).read_bytes() for name in _ASSETS}

    @app.middleware("http")
    async def require_token(request: Request, call_next):
        given = request.headers.get("authorization", "")
        given = given[7:] if given.lower().startswith("bearer ") else request.query_params.get("token", "")
        if not hmac.compare_digest(given.encode(), expected):
            return JSONResponse({"detail": "missing or wrong token: open the URL tracker-studio printed"}, 401)
        return await call_next(request)

    @app.exception_handler(StudioError)
    async def studio_error(request: Request, e: StudioError):
        return JSONResponse({"detail": str(e)}, e.status)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, e: RequestValidationError):
        return JSONResponse({"detail": _one_line_validation(e)}, 422)

    @app.get("/", response_class=HTMLResponse)
    def index() -> HTMLResponse:
        q = html.escape(token, quote=True)
        return HTMLResponse(page.replace("{{TOKEN}}", q), headers={"Cache-Control": "no-store"})

    @app.get("/assets/{name}")
    def asset(name: str) -> Response:
        if name not in assets:
            raise StudioError(f"no asset {name!r}", status=404)
        return Response(assets[name], media_type=_ASSETS[name], headers={"Cache-Control": "no-store"})

    _add_api_routes(app, studio)
    return LimitBody(app, max_body)


def _video(studio: Studio) -> dict[str, Any]:
    """What the page knows of the video: its size, the frames it shows, and (part of a video) the video's
    frame number of page frame i, ``start + i * stride``."""
    i, c = studio.info, studio.clip
    return {
        "width": i.width,
        "height": i.height,
        "num_frames": studio.frames.num_frames,
        "fps": i.fps,
        "warning": studio.warning,
        "video_frames": {"start": c.start, "stride": c.stride},
    }


def _add_api_routes(app: FastAPI, studio: Studio) -> None:
    """The JSON API over the studio's session (the page's routes are in ``create_app``)."""
    _add_frame_routes(app, studio)
    _add_object_routes(app, studio)
    _add_track_routes(app, studio)


def _add_frame_routes(app: FastAPI, studio: Studio) -> None:
    """The video, its frames, and finding objects on one."""

    @app.get("/api/video")
    def video() -> dict[str, Any]:
        return _video(studio)

    @app.get("/api/frames/{i}.jpg")
    def frame(i: int) -> Response:
        try:
            data = studio.frames.jpeg(i)
        except IndexError as e:
            raise StudioError(str(e), status=404) from None
        except SourceError as e:
            raise StudioError(str(e), status=500) from None
        # A frame never changes while the studio runs: the browser may keep it.
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})

    @app.post("/api/frames/{i}/find")
    def find(i: int) -> dict[str, Any]:
        return studio.find_objects(i)


def _add_object_routes(app: FastAPI, studio: Studio) -> None:
    """The objects, their prompts, and the prompts file."""

    @app.get("/api/objects")
    def objects() -> dict[str, Any]:
        return {"objects": studio.list_objects()}

    @app.put("/api/objects/{object_id}")
    def put_object(object_id: int, body: LabelBody) -> dict[str, Any]:
        return studio.set_label(object_id, body.label)

    @app.delete("/api/objects/{object_id}")
    def delete_object(object_id: int) -> dict[str, Any]:
        studio.delete_object(object_id)
        return {"deleted": object_id}

    @app.get("/api/objects/{object_id}/prompts/{frame}")
    def get_prompt(object_id: int, frame: int) -> dict[str, Any]:
        return studio.get_prompt(object_id, frame)

    @app.put("/api/objects/{object_id}/prompts/{frame}")
    def put_prompt(object_id: int, frame: int, body: PromptBody) -> dict[str, Any]:
        return studio.set_prompt(object_id, frame, body.points, body.box, body.label)

    @app.delete("/api/objects/{object_id}/prompts/{frame}")
    def delete_prompt(object_id: int, frame: int) -> dict[str, Any]:
        studio.delete_prompt(object_id, frame)
        return {"deleted": [object_id, frame]}

    @app.get("/api/prompts.yaml")
    def prompts_yaml() -> PlainTextResponse:
        return PlainTextResponse(studio.prompts_yaml(), media_type="application/yaml")

    @app.post("/api/save")
    def save() -> dict[str, Any]:
        return studio.save()


def _add_track_routes(app: FastAPI, studio: Studio) -> None:
    """Track jobs: start one, follow it, read its masks and download its files."""

    @app.post("/api/track")
    def track() -> dict[str, Any]:
        return {"job": studio.start_track()}

    @app.get("/api/track")
    def tracks() -> dict[str, Any]:
        return {"jobs": [j.status() for j in studio.jobs.values()]}

    @app.get("/api/track/{job}")
    def track_status(job: int) -> dict[str, Any]:
        return studio.job(job).status()

    @app.get("/api/track/{job}/frames/{i}")
    def track_frame(job: int, i: int) -> dict[str, Any]:
        return studio.job_frame(job, i)

    @app.get("/api/track/{job}/presence")
    def track_presence(job: int) -> dict[str, Any]:
        return studio.job_presence(job)

    @app.get("/api/track/{job}/files")
    def track_files(job: int) -> dict[str, Any]:
        return {"job": job, "files": studio.export_names(job)}

    @app.get("/api/track/{job}/files/{name}")
    def track_file(job: int, name: str) -> StreamingResponse:
        # Streamed from the descriptor the checks were made on: a path opened again later could be another file.
        f, size = studio.open_export(job, name)

        def chunks() -> Iterator[bytes]:
            with f:
                while block := f.read(1 << 16):
                    yield block

        kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
        headers = {
            "Cache-Control": "no-store",
            "Content-Length": str(size),
            "Content-Disposition": f'attachment; filename="{name}"',
        }
        return StreamingResponse(chunks(), media_type=kind, headers=headers)
