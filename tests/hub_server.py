"""A small, stdlib-only HTTP server speaking the subset of the Hugging Face Hub protocol used by ``huggingface_hub``.

It is meant for tests: point ``HF_ENDPOINT`` at :attr:`HubServer.url` *before* importing ``huggingface_hub`` and the
real client (``create_repo``, ``upload_folder``, ``model_info``, ``list_repo_files``, ``hf_hub_download``,
``snapshot_download``, ``ModelCard.load``...) talks to it. Every file is committed as a "regular" (non-LFS, non-Xet)
git blob, so the client sends contents inline in the commit payload. Any bearer token is accepted.

Storage layout under ``root`` (one folder per repo, e.g. ``models--org--name``)::

    meta.json              {"id", "type", "private", "createdAt", "refs": {"main": <commit sha>, ...}}
    commits/<sha>.json     {"parent", "summary", "description", "date", "files": {path: blob oid}}
    blobs/<oid>            file content, keyed by its git blob sha1 (what the Hub reports as ETag / oid)
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import pathlib
import re
import shutil
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self
from urllib.parse import parse_qs, quote, unquote, urlsplit

_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space", "kernels": "kernel"}
_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/", "kernel": "kernels/"}
_USER = "zoo-user"  # owner of the (any) token, namespace of repos created without one
_SHA_RE = re.compile(r"^[0-9a-f]{40}$")


class HubError(Exception):
    """An error answered as JSON ``{"error": message}`` with the ``X-Error-Code`` header the client understands."""

    def __init__(self, status: int, message: str, code: str | None = None, commit: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.commit = status, message, code, commit


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _git_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class _Store:
    """On-disk repos with a commit-by-commit history; metadata reads and all writes are serialised by one lock."""

    def __init__(self, root: pathlib.Path) -> None:
        self.root = pathlib.Path(root)
        self.lock = threading.RLock()

    def folder(self, repo_type: str, repo_id: str) -> pathlib.Path:
        return self.root / f"{repo_type}s--{repo_id.replace('/', '--')}"

    def meta(self, repo_type: str, repo_id: str) -> dict:
        path = self.folder(repo_type, repo_id) / "meta.json"
        with self.lock:
            if not path.is_file():
                raise HubError(404, f"Repository {repo_id} not found", "RepoNotFound")
            return json.loads(path.read_text())

    def resolve(self, repo_type: str, repo_id: str, rev: str) -> tuple[str, dict]:
        """Return ``(commit sha, commit dict)`` for a branch, ``refs/pr/N`` or commit sha."""
        with self.lock:
            sha = self.meta(repo_type, repo_id)["refs"].get(rev, rev)
            path = self.folder(repo_type, repo_id) / "commits" / f"{sha}.json"
            if not _SHA_RE.match(sha) or not path.is_file():
                raise HubError(404, f"Invalid rev id: {rev}", "RevisionNotFound")
            return sha, json.loads(path.read_text())

    def blob(self, repo_type: str, repo_id: str, oid: str) -> pathlib.Path:
        return self.folder(repo_type, repo_id) / "blobs" / oid

    def create(self, repo_type: str, repo_id: str, private: bool) -> bool:
        """Create an empty repo with an initial commit; return False if it already exists."""
        with self.lock:
            folder = self.folder(repo_type, repo_id)
            if (folder / "meta.json").is_file():
                return False
            (folder / "blobs").mkdir(parents=True, exist_ok=True)
            meta = {"id": repo_id, "type": repo_type, "private": private, "createdAt": _now(), "refs": {}}
            (folder / "meta.json").write_text(json.dumps(meta))
            self.commit(repo_type, repo_id, "main", {"summary": "initial commit"}, {}, parent=None)
            return True

    def delete(self, repo_type: str, repo_id: str) -> None:
        with self.lock:
            self.meta(repo_type, repo_id)
            shutil.rmtree(self.folder(repo_type, repo_id))

    def commit(self, repo_type: str, repo_id: str, ref: str, header: dict, files: dict, parent: str | None) -> str:
        """Write a commit with the full ``files`` mapping and point ``ref`` at it; return its sha."""
        with self.lock:
            folder = self.folder(repo_type, repo_id)
            record = {"parent": parent, "summary": header.get("summary", ""), "date": _now(), "files": files}
            record["description"] = header.get("description", "")
            sha = hashlib.sha1(json.dumps([repo_id, record], sort_keys=True).encode()).hexdigest()
            (folder / "commits").mkdir(exist_ok=True)
            (folder / "commits" / f"{sha}.json").write_text(json.dumps(record))
            meta = self.meta(repo_type, repo_id)
            meta["refs"][ref] = sha
            (folder / "meta.json").write_text(json.dumps(meta))
            return sha


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        """Track the connection so that :meth:`HubServer.stop` can close it."""
        super().setup()
        self.server.connections.add(self.connection)

    def finish(self) -> None:
        """Forget the connection once the client is done with it."""
        self.server.connections.discard(self.connection)
        super().finish()

    def log_message(self, format: str, *args) -> None:
        """Do not log requests to stderr."""

    def do_GET(self) -> None:
        """Answer any request (GET, HEAD, POST, DELETE): read the body, route it, turn errors into JSON answers."""
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))  # the client never sends chunked bodies
        url = urlsplit(self.path)
        self.query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        self.base = f"http://{self.headers.get('Host') or self.server.server_address[0]}"
        segments = [unquote(s) for s in url.path.split("/") if s]
        try:
            self._route(self.command, segments, body)
        except HubError as e:
            headers = {"X-Error-Message": e.message}
            headers.update({"X-Error-Code": e.code} if e.code else {})
            headers.update({"X-Repo-Commit": e.commit} if e.commit else {})
            self._send(e.status, json.dumps({"error": e.message}).encode(), headers)
        except Exception as e:  # noqa: BLE001 - report server bugs to the client as a 500
            self._send(500, json.dumps({"error": f"{type(e).__name__}: {e}"}).encode())

    do_HEAD = do_POST = do_DELETE = do_GET

    def _send(self, status: int, body: bytes = b"", headers: dict | None = None) -> None:
        self.send_response(status)
        headers = {"Content-Type": "application/json", "Content-Length": str(len(body)), **(headers or {})}
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, data, status: int = 200) -> None:
        self._send(status, json.dumps(data).encode())

    # Routes. Repo ids always have a namespace (``org/name``), as on the Hub.
    def _route(self, method: str, seg: list[str], body: bytes) -> None:
        store = self.server.store
        if seg[:1] == ["api"]:
            route = (method, "/".join(seg[1:3]))
            if route == ("GET", "whoami-v2"):
                return self._json({"type": "user", "name": _USER, "fullname": "Zoo User", "orgs": [],
                                   "auth": {"type": "access_token", "accessToken": {"role": "write"}}})  # fmt: skip
            if route == ("GET", "agent-harnesses"):
                return self._json({"standardEnvVars": [], "harnesses": {}})
            if route == ("POST", "validate-yaml"):
                return self._json({"errors": [], "warnings": []})
            if route in {("POST", "repos/create"), ("DELETE", "repos/delete")}:
                payload = json.loads(body or b"{}")
                repo_type = payload.get("type") or "model"
                repo_id = f"{payload.get('organization') or _USER}/{payload['name']}"  # like the Hub: user namespace
                repo_url = f"{self.base}/{_PREFIX[repo_type]}{repo_id}"
                if method == "DELETE":
                    store.delete(repo_type, repo_id)
                    return self._json({})
                private = payload.get("private") or payload.get("visibility") == "private"
                if store.create(repo_type, repo_id, bool(private)):
                    return self._json({"url": repo_url, "name": repo_id, "id": repo_id})
                return self._json({"error": "You already created this model repo", "url": repo_url}, status=409)
            if len(seg) >= 4 and seg[1] in _TYPES:
                return self._api_repo(method, _TYPES[seg[1]], "/".join(seg[2:4]), seg[4:], body)
        elif method in ("GET", "HEAD"):
            typed = bool(seg) and seg[0] in _TYPES and seg[0] != "models"
            repo_type, rest = (_TYPES[seg[0]], seg[1:]) if typed else ("model", seg)
            if len(rest) >= 5 and rest[2] == "resolve":
                return self._resolve(repo_type, "/".join(rest[:2]), rest[3], "/".join(rest[4:]))
        raise HubError(404, f"Route not found: {method} {self.path}")

    def _api_repo(self, method: str, repo_type: str, repo_id: str, rest: list[str], body: bytes) -> None:
        store = self.server.store
        action, rev, path = (rest + [None, None])[0], (rest + ["main", "main"])[1], "/".join(rest[2:])
        if method == "GET" and action in (None, "revision"):
            return self._json(self._info(repo_type, repo_id, rev if action else "main"))
        if method == "GET" and action == "tree":
            _, commit = store.resolve(repo_type, repo_id, rev)
            recursive = self.query.get("recursive") in ("true", "True", "1")
            return self._json(self._tree(repo_type, repo_id, commit["files"], path, recursive))
        if method == "POST" and action == "paths-info":
            _, commit = store.resolve(repo_type, repo_id, rev)
            tree = self._tree(repo_type, repo_id, commit["files"], "", recursive=True)
            wanted = set(parse_qs(body.decode()).get("paths", []))
            return self._json([entry for entry in tree if entry["path"] in wanted])
        if method == "POST" and action == "preupload":
            files = store.resolve(repo_type, repo_id, rev)[1]["files"]
            entries = json.loads(body)["files"]  # never "lfs": the client then sends contents inline (base64)
            return self._json({"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False,
                                          "oid": files.get(f["path"])} for f in entries]})  # fmt: skip
        if method == "POST" and action == "commit":
            return self._commit(repo_type, repo_id, rev, body)
        raise HubError(404, f"Route not found: {method} {self.path}")

    def _info(self, repo_type: str, repo_id: str, rev: str) -> dict:
        store = self.server.store
        meta = store.meta(repo_type, repo_id)
        sha, commit = store.resolve(repo_type, repo_id, rev)
        blobs = self.query.get("blobs") in ("true", "True", "1")
        siblings = []
        for path, oid in sorted(commit["files"].items()):
            size = store.blob(repo_type, repo_id, oid).stat().st_size
            siblings.append({"rfilename": path, **({"size": size, "blobId": oid} if blobs else {})})
        author = repo_id.split("/")[0]
        info = {"_id": hashlib.md5(repo_id.encode()).hexdigest()[:24], "id": repo_id, "author": author, "sha": sha}
        info |= {"lastModified": commit["date"], "createdAt": meta["createdAt"], "private": meta["private"]}
        return info | {"disabled": False, "gated": False, "downloads": 0, "likes": 0, "tags": [], "siblings": siblings}

    def _tree(self, repo_type: str, repo_id: str, files: dict, path: str, recursive: bool) -> list[dict]:
        store, prefix = self.server.store, f"{path.strip('/')}/" if path.strip("/") else ""
        if prefix and not any(p.startswith(prefix) for p in files):
            raise HubError(404, f"{path} does not exist on this revision", "EntryNotFound")
        entries: dict[str, dict] = {}
        for file_path, oid in sorted(files.items()):
            if not file_path.startswith(prefix):
                continue
            parts = file_path[len(prefix) :].split("/")
            for depth in range(1, len(parts) if recursive else min(len(parts), 2)):
                folder = prefix + "/".join(parts[:depth])
                folder_oid = hashlib.sha1(folder.encode()).hexdigest()
                entries.setdefault(folder, {"type": "directory", "oid": folder_oid, "size": 0, "path": folder})
            if recursive or len(parts) == 1:
                size = store.blob(repo_type, repo_id, oid).stat().st_size
                entries[file_path] = {"type": "file", "oid": oid, "size": size, "path": file_path}
        return list(entries.values())

    def _commit(self, repo_type: str, repo_id: str, rev: str, body: bytes) -> None:
        store = self.server.store
        with store.lock:
            parent, commit = store.resolve(repo_type, repo_id, rev)
            lines = [json.loads(line) for line in body.splitlines() if line.strip()]
            header = next((item["value"] for item in lines if item["key"] == "header"), {})
            if header.get("parentCommit") and header["parentCommit"] != parent:
                raise HubError(412, f"Parent commit {header['parentCommit']} is not the head of {rev}")
            files = dict(commit["files"])
            for item in lines:
                key, value = item["key"], item["value"]
                if key == "file":
                    raw = value["content"]
                    data = base64.b64decode(raw) if value.get("encoding") == "base64" else raw.encode()
                    files[value["path"]] = oid = _git_oid(data)
                    if not (blob := store.blob(repo_type, repo_id, oid)).exists():  # blobs are immutable once written
                        blob.write_bytes(data)
                elif key in ("deletedFile", "deletedFolder"):
                    target = value["path"].strip("/")
                    gone = [p for p in files if p == target or (key == "deletedFolder" and p.startswith(target + "/"))]
                    if not gone:
                        raise HubError(404, f"A file with this name doesn't exist: {target}", "EntryNotFound")
                    for p in gone:
                        del files[p]
                elif key != "header":
                    raise HubError(400, f"Unsupported commit operation {key!r} (this test hub stores no LFS files)")
            pr_url, ref = None, rev
            if self.query.get("create_pr") in ("1", "true", "True"):
                number = 1 + sum(r.startswith("refs/pr/") for r in store.meta(repo_type, repo_id)["refs"])
                ref, pr_url = f"refs/pr/{number}", f"{self.base}/{_PREFIX[repo_type]}{repo_id}/discussions/{number}"
            sha = store.commit(repo_type, repo_id, ref, header, files, parent=parent)
        commit_url = f"{self.base}/{_PREFIX[repo_type]}{repo_id}/commit/{sha}"
        self._json({"success": True, "commitOid": sha, "commitUrl": commit_url, "pullRequestUrl": pr_url})

    def _resolve(self, repo_type: str, repo_id: str, rev: str, path: str) -> None:
        store = self.server.store
        sha, commit = store.resolve(repo_type, repo_id, rev)
        oid = commit["files"].get(path)
        if oid is None:
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound", commit=sha)
        data = store.blob(repo_type, repo_id, oid).read_bytes()
        headers = {"Content-Type": "application/octet-stream", "ETag": f'"{oid}"', "X-Repo-Commit": sha}
        headers.update({"Accept-Ranges": "bytes", "Content-Disposition": f"inline; filename*=UTF-8''{quote(path)}"})
        match = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range", "").strip())
        if match and self.command == "GET" and any(match.groups()):
            start, end = match.groups()
            first = int(start) if start else max(len(data) - int(end), 0)
            last = min(int(end), len(data) - 1) if start and end else len(data) - 1
            if first >= len(data) or first > last:
                return self._send(416, b"", {**headers, "Content-Range": f"bytes */{len(data)}"})
            headers["Content-Range"] = f"bytes {first}-{last}/{len(data)}"
            return self._send(206, data[first : last + 1], headers)
        self._send(200, data, headers)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], store: _Store) -> None:
        super().__init__(address, _Handler)
        self.store, self.connections = store, set()


class HubServer:
    """A Hugging Face Hub-compatible HTTP server storing repos under ``root``, served from a daemon thread.

    Args:
        root: Folder holding one sub-folder per repo (created if missing).
        host: Interface to bind.
        port: TCP port to bind; ``0`` picks a free one (read it back from :attr:`url` after :meth:`start`).

    Example:
        >>> with HubServer(tmp_path) as hub:  # doctest: +SKIP
        ...     os.environ["HF_ENDPOINT"] = hub.url  # must happen before `import huggingface_hub`
    """

    def __init__(self, root: pathlib.Path, host: str = "127.0.0.1", port: int = 0) -> None:
        self.root, self.host, self.port = pathlib.Path(root), host, port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL of the server, suitable for ``HF_ENDPOINT``."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> HubServer:
        """Bind the socket and start serving in a daemon thread.

        Returns:
            The server itself, for chaining.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        self._server = _Server((self.host, self.port), _Store(self.root))
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close open keep-alive connections and release the port."""
        if self._server is None:
            return
        self._server.shutdown()
        for connection in list(self._server.connections):
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._server.server_close()
        self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
