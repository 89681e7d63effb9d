"""The console's web application (Starlette): routes, sessions, CSRF and the security headers.

Every response carries a strict Content-Security-Policy (``default-src 'self'``, no inline script,
no other host); scripts and styles are files the package ships (``/static/``). Sessions are random
tokens in an HttpOnly, SameSite=Strict cookie; every POST carries the session's CSRF token (a form
field or the ``X-CSRF-Token`` header); the login form carries a token bound to a cookie of its own.
Pages answer 401 without a session (showing the login form) and 403 for a role that may not act.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from finetrail.console import releases
from finetrail.console.store import Session, Store
from finetrail.errors import FinetrailError

SESSION_COOKIE = "ft_session"
LOGIN_COOKIE = "ft_login"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'self'"
)
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cache-control", b"no-store"),
]
STATIC = Path(__file__).parent / "static"
CHARTS = ("epsilon", "exposure", "membership", "bias", "lineage")  # reports.charts.all_charts


class SecurityHeaders:
    """Adds :data:`HEADERS` to every response (a chart's SVG keeps the stricter one it sets)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [
                    (k, v) for k, v in HEADERS if k not in names
                ]
            await send(message)

        await self.app(scope, receive, send_with)


@dataclass(frozen=True)
class Config:
    root: Path
    store: Store
    trust: Path | None = None


class Console:
    def __init__(self, config: Config) -> None:
        from finetrail.reports.render import make_env

        self.config = config
        self.env = make_env(html=True)
        self.env.globals["release_url"] = lambda rid: f"/r/{rid}"

    # -- helpers ----------------------------------------------------------------------------------
    def page(self, name: str, code: int = 200, **context: Any) -> HTMLResponse:
        from finetrail.reports.render import render

        return HTMLResponse(render(self.env, f"console/{name}", **context), status_code=code)

    def session(self, request: Request) -> Session | None:
        return self.config.store.session(request.cookies.get(SESSION_COOKIE))

    def login_page(self, request: Request, status: int, error: str = "") -> HTMLResponse:
        token = secrets.token_urlsafe(24)
        resp = self.page("login.html.j2", status, csrf=token, error=error, s=None)
        resp.set_cookie(LOGIN_COOKIE, token, httponly=True, samesite="strict", max_age=900)
        return resp

    def error(self, s: Session | None, status: int, message: str) -> HTMLResponse:
        return self.page("error.html.j2", status, s=s, message=message, status=status)

    def refs(self) -> dict[str, releases.ReleaseRef]:
        return releases.find_releases(self.config.root)

    @staticmethod
    def csrf_ok(s: Session, supplied: str | None) -> bool:
        return bool(supplied) and hmac.compare_digest(s.csrf.encode(), str(supplied).encode())

    # -- login ------------------------------------------------------------------------------------
    async def login(self, request: Request) -> Response:
        if request.method == "GET":
            return self.login_page(request, 200)
        form = await request.form()
        token = request.cookies.get(LOGIN_COOKIE)
        if not token or not hmac.compare_digest(token.encode(), str(form.get("csrf", "")).encode()):
            return self.error(None, 403, "The login form's CSRF token is missing or wrong.")
        name, password = str(form.get("name", ""))[:200], str(form.get("password", ""))
        address = request.client.host if request.client else "?"
        store = self.config.store
        if store.throttled(name, address):
            resp = self.login_page(request, 429, "Too many failed logins: wait 5 minutes.")
            return resp
        user = store.authenticate(name, password, address)
        if user is None:
            return self.login_page(request, 401, "Wrong name or password.")
        resp = RedirectResponse("/", status_code=303)
        resp.set_cookie(
            SESSION_COOKIE,
            store.new_session(user),
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            max_age=8 * 3600,
        )
        resp.delete_cookie(LOGIN_COOKIE)
        return resp

    async def logout(self, request: Request) -> Response:
        s = self.session(request)
        if s is None:
            return self.login_page(request, 401)
        form = await request.form()
        if not self.csrf_ok(s, str(form.get("csrf", ""))):
            return self.error(s, 403, "CSRF token missing or wrong.")
        self.config.store.end_session(request.cookies.get(SESSION_COOKIE))
        resp = RedirectResponse("/login", status_code=303)
        resp.delete_cookie(SESSION_COOKIE)
        return resp

    # -- pages ------------------------------------------------------------------------------------
    def queue(self, request: Request) -> Response:
        s = self.session(request)
        if s is None:
            return self.login_page(request, 401)
        model = request.query_params.get("model", "")
        status = request.query_params.get("status", "")
        rows = [releases.queue_row(r, trust_file=self.config.trust) for r in self.refs().values()]
        models = sorted({r.model for r in rows})
        shown = [
            r
            for r in rows
            if (not model or r.model == model) and (not status or r.status == status)
        ]
        return self.page(
            "queue.html.j2", s=s, rows=shown, models=models, model=model, status=status,
            statuses=("approved", "awaiting approval", "blocked", "not gated", "error"),
        )  # fmt: skip

    def _ref(self, request: Request) -> releases.ReleaseRef | None:
        return self.refs().get(str(request.path_params.get("rid", "")))

    def release(self, request: Request) -> Response:
        s = self.session(request)
        if s is None:
            return self.login_page(request, 401)
        ref = self._ref(request)
        if ref is None:
            return self.error(s, 404, "No such release.")
        from markupsafe import Markup, escape

        from finetrail.reports import datasheet

        try:
            d = releases.load_detail(ref, trust_file=self.config.trust)
        except FinetrailError as err:
            return self.error(s, 500, f"This release cannot be read: {err.what}")
        from finetrail.console.chart_text import chart_alt

        # an image with the figures it shows as its text; none where the evidence draws no chart
        # (the dossier's sentence says which evidence is missing)
        alt = chart_alt(d.m.ev)
        charts = {
            name: Markup(
                f'<img src="/r/{escape(ref.id)}/chart/{name}.svg" alt="{escape(alt[name])}">'
            )
            if alt.get(name)
            else None
            for name in CHARTS
        }
        try:
            change, previous, diff_note = releases.diff_against_previous(
                ref, self.refs(), trust_file=self.config.trust
            )
        except FinetrailError as err:
            change, previous, diff_note = None, None, f"cannot be computed: {err.what}"
        return self.page(
            "release.html.j2", s=s, d=d, m=d.m, rid=ref.id, charts=charts, diff=change,
            previous=previous, diff_note=diff_note,
            datasheets=datasheet.datasheets(d.m), review_roles=self._review_roles(s, ref),
            all_comments=request.query_params.get("comments") == "all",
            signed=self._signed_row(request, s, d),
        )  # fmt: skip

    @staticmethod
    def _signed_row(request: Request, s: Session, d: releases.ReleaseDetail) -> Any:
        """The review ``?signed=SEQ`` names, when it is this user's (the page after a sign-off)."""
        seq = request.query_params.get("signed", "")
        if not seq.isdigit():
            return None
        return next(
            (r for r in d.status.rows if r.seq == int(seq) and r.reviewer == s.user.name), None
        )

    def _review_roles(self, s: Session, ref: releases.ReleaseRef) -> tuple[str, ...]:
        """The review roles the trust file grants this person (any of their keys)."""
        if self.config.trust is None:
            return ()
        try:
            from finetrail.governance.trust import load_trust

            root = load_trust(self.config.trust, workspace=ref.path)
        except FinetrailError:
            return ()
        return tuple(
            sorted({r for k in root.file.reviewers if k.name == s.user.name for r in k.roles})
        )

    def chart(self, request: Request) -> Response:
        s = self.session(request)
        if s is None:
            return Response(status_code=401)
        ref = self._ref(request)
        name = str(request.path_params.get("name", ""))
        if ref is None or name not in CHARTS:
            return Response(status_code=404)
        try:
            svg = releases.load_detail(ref, trust_file=self.config.trust).charts().get(name)
        except FinetrailError:
            svg = None
        if not svg:
            return Response(status_code=404)
        return Response(
            svg,
            media_type="image/svg+xml",
            headers={"content-security-policy": "default-src 'none'; style-src 'unsafe-inline'"},
        )

    async def comment(self, request: Request) -> Response:
        from finetrail.console.comments import add_comment

        s = self.session(request)
        if s is None:
            return self.login_page(request, 401)
        form = await request.form()
        if not self.csrf_ok(s, str(form.get("csrf", ""))):
            return self.error(s, 403, "CSRF token missing or wrong.")
        if not s.user.can_write:
            return self.error(s, 403, f"The role {s.user.role} may read, not comment.")
        ref = self._ref(request)
        if ref is None:
            return self.error(s, 404, "No such release.")
        reply = str(form.get("reply_to", "")).strip()
        rule_ids = releases.gate_rule_ids(ref)
        try:
            add_comment(
                ref,
                author=s.user.name,
                thread=str(form.get("thread", "release")),
                text=str(form.get("text", "")),
                state=str(form.get("state", "open")),
                reply_to=int(reply) if reply.isdigit() else None,
                rule_ids=rule_ids,
            )
        except FinetrailError as err:
            return self.error(s, 400, err.what)
        return RedirectResponse(f"/r/{ref.id}#comments", status_code=303)

    # -- the trust file, for admins -----------------------------------------------------------------
    def trust_page(self, request: Request) -> Response:
        """The trust file's signers and the pending enrolments (admins only; read-only: the
        trust file is edited out of band, with the command shown for each enrolment)."""
        import base64

        from finetrail.console.cli import trust_add_command
        from finetrail.governance import clock
        from finetrail.governance.io import sha256_bytes
        from finetrail.governance.trust import load_trust

        s = self.session(request)
        if s is None:
            return self.login_page(request, 401)
        if s.user.role != "admin":
            return self.error(s, 403, f"The role {s.user.role} may not see the trust file page.")
        trust, problem, signers = self.config.trust, "", []
        root = None
        if trust is None:
            problem = "This console was started without a trust file (finetrail serve --trust)."
        else:
            try:
                root = load_trust(trust, workspace=None)
            except FinetrailError as err:
                problem = f"The trust file cannot be read: {err.what}"
        now = clock.release_now()
        if root is not None:
            for k in root.keys.values():
                e = k.entry
                state = (
                    "revoked" if e.revoked_at is not None and now >= e.revoked_at
                    else "not yet valid" if now < e.not_before
                    else "expired" if now > e.not_after
                    else "valid"
                )  # fmt: skip
                signers.append({"where": k.where, "role": k.role, "name": e.name,
                                "review_roles": k.review_roles, "keyid": k.keyid,
                                "not_before": e.not_before.isoformat(),
                                "not_after": e.not_after.isoformat(),
                                "revoked_at": e.revoked_at.isoformat() if e.revoked_at else "",
                                "state": state})  # fmt: skip
        roles = sorted(
            {r for ref in self.refs().values() for r in releases.queue_row(
                ref, trust_file=trust).roles}
        )  # fmt: skip
        pending = []
        for u in self.config.store.enrolled():
            try:
                keyid = sha256_bytes(base64.b64decode(u.public_key or "", validate=True))
            except ValueError:
                continue
            named = root.lookup(keyid) if root is not None else None
            pending.append({
                "name": u.name, "account_role": u.role, "public_key": u.public_key,
                "keyid": keyid,
                "in_trust": f"{named.where} ({named.entry.name}; {', '.join(named.review_roles) or named.role})"
                if named else "",
                "command": trust_add_command(
                    str(trust) if trust else "TRUST_FILE", u.name, ("ROLE",), u.public_key or ""
                ),
            })  # fmt: skip
        return self.page(
            "trust.html.j2", s=s, trust=trust, problem=problem, signers=signers,
            pending=pending, roles=roles, now=now.isoformat(),
        )  # fmt: skip

    # -- enrolment and sign-off -------------------------------------------------------------------
    def enrol_page(self, request: Request) -> Response:
        s = self.session(request)
        if s is None:
            return self.login_page(request, 401)
        return self.page("enrol.html.j2", s=s, trust=self.config.trust)

    async def _json_post(
        self, request: Request
    ) -> tuple[Session | None, dict[str, Any], Response | None]:
        s = self.session(request)
        if s is None:
            return None, {}, JSONResponse({"error": "log in first"}, status_code=401)
        if not self.csrf_ok(s, request.headers.get("x-csrf-token")):
            return s, {}, JSONResponse({"error": "CSRF token missing or wrong"}, status_code=403)
        if not s.user.can_write:
            return s, {}, JSONResponse({"error": f"the role {s.user.role} may not sign"}, 403)
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return s, {}, JSONResponse({"error": "a JSON object is expected"}, status_code=400)
        return s, body, None

    async def enrol(self, request: Request) -> Response:
        from finetrail.console.signoff import _b64
        from finetrail.governance.io import sha256_bytes

        s, body, bad = await self._json_post(request)
        if bad is not None or s is None:
            return bad or JSONResponse({}, status_code=401)
        try:
            raw = _b64(str(body.get("public_key", "")), "public key", 32)
        except FinetrailError as err:
            return JSONResponse({"error": err.what}, status_code=400)
        self.config.store.enrol_key(s.user.name, str(body["public_key"]))
        return JSONResponse({"keyid": sha256_bytes(raw), "name": s.user.name})

    async def sign_prepare(self, request: Request) -> Response:
        from finetrail.console import signoff

        s, body, bad = await self._json_post(request)
        if bad is not None or s is None:
            return bad or JSONResponse({}, status_code=401)
        ref = self._ref(request)
        if ref is None:
            return JSONResponse({"error": "no such release"}, status_code=404)
        try:
            p = signoff.prepare(
                ref,
                reviewer=s.user.name,
                decision=str(body.get("decision", "")),
                role=str(body.get("role", "")),
                note=str(body.get("note", ""))[:10_000],
                public_key_b64=str(body.get("public_key", "")),
                trust_file=self.config.trust,
            )
        except FinetrailError as err:
            return JSONResponse({"error": err.what, "why": err.why or ""}, status_code=400)
        nonce = self.config.store.put_sign_request(s.user.name, ref.id, p.to_json())
        import base64

        return JSONResponse(
            {
                "nonce": nonce,
                "signing_bytes": base64.b64encode(p.signing_bytes).decode("ascii"),
                "payload": p.payload,
                "seq": p.seq,
            }
        )

    async def sign_complete(self, request: Request) -> Response:
        from finetrail.console import signoff

        s, body, bad = await self._json_post(request)
        if bad is not None or s is None:
            return bad or JSONResponse({}, status_code=401)
        ref = self._ref(request)
        if ref is None:
            return JSONResponse({"error": "no such release"}, status_code=404)
        text = self.config.store.take_sign_request(
            str(body.get("nonce", "")), user=s.user.name, release=ref.id
        )
        if text is None:
            return JSONResponse(
                {"error": "unknown, used or expired signing request (replayed?)"}, status_code=409
            )
        try:
            entry = signoff.complete(
                ref,
                signoff.Prepared.from_json(text),
                signature_b64=str(body.get("signature", "")),
                trust_file=self.config.trust,
                extra=[x for x in body.get("extra") or [] if isinstance(x, dict)],
            )
        except signoff.NeedsSignature as need:
            import base64

            nonce = self.config.store.put_sign_request(s.user.name, ref.id, text)
            return JSONResponse(
                {
                    "error": need.what,
                    "sign_more": base64.b64encode(need.message).decode("ascii"),
                    "nonce": nonce,
                },
                status_code=409,
            )
        except signoff.SigningMoved as err:
            return JSONResponse(
                {"error": err.what, "why": err.why or "", "retry": True}, status_code=409
            )
        except FinetrailError as err:
            return JSONResponse({"error": err.what, "why": err.why or ""}, status_code=400)
        return JSONResponse({"seq": entry.seq, "digest": entry.digest, "kind": entry.kind})


def dossier_css(request: Request) -> Response:
    from importlib import resources

    css = (resources.files("finetrail.templates") / "dossier.css").read_text(encoding="utf-8")
    return Response(css, media_type="text/css")


def create_app(*, root: Path, store: Store, trust: Path | None = None) -> ASGIApp:
    """The console over the workspaces below ``root``."""
    c = Console(Config(root=Path(root), store=store, trust=Path(trust) if trust else None))
    routes = [
        Route("/", c.queue),
        Route("/login", c.login, methods=["GET", "POST"]),
        Route("/logout", c.logout, methods=["POST"]),
        Route("/enrol", c.enrol_page),
        Route("/enrol", c.enrol, methods=["POST"]),
        Route("/admin/trust", c.trust_page),
        Route("/r/{rid}", c.release),
        Route("/r/{rid}/chart/{name}.svg", c.chart),
        Route("/r/{rid}/comment", c.comment, methods=["POST"]),
        Route("/r/{rid}/sign/prepare", c.sign_prepare, methods=["POST"]),
        Route("/r/{rid}/sign/complete", c.sign_complete, methods=["POST"]),
        Route("/static/dossier.css", dossier_css),
        Mount("/static", app=StaticFiles(directory=str(STATIC)), name="static"),
    ]
    return SecurityHeaders(Starlette(routes=routes))
