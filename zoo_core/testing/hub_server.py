"""A small Hub-compatible HTTP server for tests (standard library only), on 127.0.0.1.

It speaks the part of the Hugging Face Hub API that ``huggingface_hub`` uses to create repos,
commit files (regular files inline, large files through the Git-LFS batch API, basic transfer),
tag and branch, list trees, paths and refs, and resolve/download files (HEAD and GET, with Range). Repos
live in memory; commit ids are real git-like sha1s of their content. Private repos answer only
to the server's token, as the real Hub does (401 + ``X-Error-Code: RepoNotFound``).

Like the real Hub, it validates the YAML metadata of every ``README.md`` committed (and answers
``/api/validate-yaml``, which ``ModelCard.validate`` calls) with ``validate_card_metadata``:
license ids from the Hub's list (``other`` with ``license_name`` and ``license_link``), dataset
ids that are Hub repo ids, and the model-index's shape. A card the Hub would refuse is refused
with HTTP 400 and the Hub's kind of message. ``create_pr=1`` commits open pull requests
(``refs/pr/N``).

Test switches: ``corrupt(repo_id, path)`` makes downloads of a file return different bytes of
the same length; ``requests`` records every request (method, path) so a test can assert that
no request was made. Never use this for anything but tests.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional
from urllib.parse import parse_qs, unquote, urlsplit

_SHA1 = re.compile(r"^[0-9a-f]{40}$")


def git_blob_sha1(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


@dataclass
class StoredFile:
    content: bytes
    lfs: bool

    @property
    def oid(self) -> str:
        """What the tree listing calls ``oid``: the git blob sha1 (of the LFS pointer for LFS files)."""
        return git_blob_sha1(self.pointer if self.lfs else self.content)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()

    @property
    def pointer(self) -> bytes:
        return (
            f"version https://git-lfs.github.com/spec/v1\noid sha256:{self.sha256}\nsize {len(self.content)}\n"
        ).encode()


@dataclass
class Commit:
    oid: str
    parent: Optional[str]
    title: str
    files: dict[str, StoredFile]
    date: str


@dataclass
class Repo:
    repo_id: str
    private: bool
    commits: dict[str, Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    pulls: dict[str, str] = field(default_factory=dict)  # "refs/pr/N" -> commit

    def resolve(self, revision: str) -> Optional[str]:
        if revision in self.branches:
            return self.branches[revision]
        if revision in self.pulls:
            return self.pulls[revision]
        if revision in self.tags:
            return self.tags[revision]
        if _SHA1.match(revision) and revision in self.commits:
            return revision
        return None


class HubState:
    """Everything the server knows: repos, LFS objects, the token, the test switches."""

    def __init__(self, token: str, lfs_suffixes: tuple[str, ...] = (".safetensors",)):
        self.token = token
        self.lfs_suffixes = lfs_suffixes
        self.repos: dict[str, Repo] = {}
        self.lfs_objects: dict[str, bytes] = {}
        self.corrupted: set[tuple[str, str]] = set()
        self.requests: list[tuple[str, str]] = []
        self.lock = threading.RLock()

    def new_commit(self, repo: Repo, parent: Optional[str], title: str, files: dict[str, StoredFile]) -> str:
        listing = "".join(f"{path}\0{stored.oid}\n" for path, stored in sorted(files.items()))
        oid = hashlib.sha1(f"tree {listing}\nparent {parent}\n\n{title}\n{len(repo.commits)}".encode()).hexdigest()
        repo.commits[oid] = Commit(
            oid, parent, title, dict(files), time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
        )
        return oid


class HubError(Exception):
    def __init__(self, status: int, code: Optional[str], message: str, headers: Optional[dict] = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


def read_body(handler: BaseHTTPRequestHandler) -> bytes:
    """A request's body, sent with Content-Length or chunked (as huggingface_hub's uploads are)."""
    if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
        chunks = []
        while True:
            size = int(handler.rfile.readline().strip().split(b";")[0], 16)
            if size == 0:
                handler.rfile.readline()
                return b"".join(chunks)
            chunks.append(handler.rfile.read(size))
            handler.rfile.readline()
    length = int(handler.headers.get("Content-Length") or 0)
    return handler.rfile.read(length) if length else b""


class _Handler(BaseHTTPRequestHandler):
    server_version = "zoo-test-hub/0.1"
    protocol_version = "HTTP/1.0"  # one request per connection: stopping the server really cuts clients off

    @property
    def state(self) -> HubState:
        return self.server.state  # type: ignore[attr-defined]

    def log_message(self, format, *args):  # quiet
        pass

    # -- plumbing -----------------------------------------------------------------------------

    def _body(self) -> bytes:
        return read_body(self)

    def _send(self, status: int, body: bytes = b"", headers: Optional[dict] = None, head: bool = False) -> None:
        self.send_response(status)
        headers = dict(headers or {})
        headers.setdefault("Content-Length", str(len(body)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if body and not head:
            self.wfile.write(body)

    def _json(self, payload, status: int = 200, headers: Optional[dict] = None) -> None:
        self._send(status, json.dumps(payload).encode(), {"Content-Type": "application/json", **(headers or {})})

    def _authorized(self) -> bool:
        return self.headers.get("Authorization", "") == f"Bearer {self.state.token}"

    def _repo(self, repo_id: str, *, write: bool = False) -> Repo:
        repo = self.state.repos.get(repo_id)
        if repo is None or (repo.private and not self._authorized()):
            status = 401 if not self._authorized() else 404
            raise HubError(status, "RepoNotFound", "Repository not found")
        if write and not self._authorized():
            raise HubError(401, None, "Invalid credentials in Authorization header")
        return repo

    def _commit(self, repo: Repo, revision: str) -> Commit:
        oid = repo.resolve(revision)
        if oid is None:
            raise HubError(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        return repo.commits[oid]

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        with self.state.lock:
            self.state.requests.append((method, url.path))
        raw = url.path.split("/")[1:]
        parts = [unquote(p) for p in raw]
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        try:
            self._route(method, parts, query)
        except HubError as error:
            headers = {"X-Error-Message": error.message, **error.headers}
            if error.code:
                headers["X-Error-Code"] = error.code
            self._json({"error": error.message}, status=error.status, headers=headers)

    def do_GET(self):
        self._dispatch("GET")

    def do_HEAD(self):
        self._dispatch("HEAD")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_DELETE(self):
        self._dispatch("DELETE")

    # -- routes -------------------------------------------------------------------------------

    def _route(self, method: str, parts: list[str], query: dict) -> None:
        state = self.state
        if parts[:2] == ["api", "whoami-v2"]:
            if not self._authorized():
                raise HubError(401, None, "Invalid credentials in Authorization header")
            return self._json({"type": "user", "name": "tester", "orgs": [], "auth": {"accessToken": {"role": "write"}}})
        if parts[:2] == ["api", "validate-yaml"] and method == "POST":
            data = json.loads(self._body() or b"{}")
            errors = validate_card_metadata(data.get("content", ""))
            if errors:
                raise HubError(400, None, "\n".join(errors))
            return self._json({"errors": [], "warnings": []})
        if parts[:3] == ["api", "repos", "create"] and method == "POST":
            return self._create_repo(json.loads(self._body() or b"{}"))
        if parts[:3] == ["api", "repos", "delete"] and method == "DELETE":
            data = json.loads(self._body() or b"{}")
            repo_id = f"{data.get('organization')}/{data['name']}"
            with state.lock:
                self._repo(repo_id, write=True)
                del state.repos[repo_id]
            return self._json({})
        if parts[:1] == ["_lfs"] and method == "PUT" and len(parts) == 2:
            return self._lfs_put(parts[1])
        if parts[:2] == ["api", "models"] and len(parts) >= 4:
            repo_id = f"{parts[2]}/{parts[3]}"
            rest = parts[4:]
            return self._model_api(method, repo_id, rest, query)
        if len(parts) >= 2 and parts[1].endswith(".git") and parts[2:] == ["info", "lfs", "objects", "batch"]:
            return self._lfs_batch(f"{parts[0]}/{parts[1][:-4]}")
        if len(parts) >= 5 and parts[2] == "resolve" and method in ("GET", "HEAD"):
            return self._resolve(method, f"{parts[0]}/{parts[1]}", parts[3], "/".join(parts[4:]))
        raise HubError(404, None, f"no route for {method} /{'/'.join(parts)}")

    def _create_repo(self, data: dict) -> None:
        if not self._authorized():
            raise HubError(401, None, "Invalid credentials in Authorization header")
        if data.get("type", "model") not in (None, "model"):
            raise HubError(400, None, "only model repos on this test server")
        repo_id = f"{data.get('organization') or 'tester'}/{data['name']}"
        with self.state.lock:
            if repo_id in self.state.repos:  # the real Hub also names the repo in its 409 answer
                return self._json({"error": "You already created this model repo", "url": f"{self._base()}/{repo_id}"},
                                  status=409, headers={"X-Error-Message": "You already created this model repo"})
            private = bool(data.get("private")) or data.get("visibility") in ("private", "protected")
            repo = Repo(repo_id, private=private)
            attributes = StoredFile(b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n", lfs=False)
            repo.branches["main"] = self.state.new_commit(repo, None, "initial commit", {".gitattributes": attributes})
            self.state.repos[repo_id] = repo
        self._json({"url": f"{self._base()}/{repo_id}", "name": repo_id, "id": repo_id})

    def _base(self) -> str:
        if self.headers.get("Host"):  # the address the client used: through a proxy, the proxy's
            return f"http://{self.headers['Host']}"
        host, port = self.server.server_address[:2]  # type: ignore[attr-defined]
        return f"http://{host}:{port}"

    def _model_api(self, method: str, repo_id: str, rest: list[str], query: dict) -> None:
        state = self.state
        with state.lock:
            repo = self._repo(repo_id, write=method in ("POST", "PUT", "DELETE"))
            if method == "GET" and (not rest or rest[0] == "revision"):
                revision = rest[1] if len(rest) > 1 else "main"
                commit = self._commit(repo, revision)
                return self._json(
                    {
                        "id": repo_id,
                        "modelId": repo_id,
                        "sha": commit.oid,
                        "private": repo.private,
                        "siblings": [{"rfilename": path} for path in sorted(commit.files)],
                        "tags": [],
                        "lastModified": commit.date,
                    }
                )
            if method == "GET" and rest[:1] == ["tree"] and len(rest) >= 2:
                commit = self._commit(repo, rest[1])
                prefix = "/".join(rest[2:])
                entries = []
                for path, stored in sorted(commit.files.items()):
                    if prefix and not path.startswith(prefix + "/"):
                        continue
                    entry = {"type": "file", "path": path, "size": len(stored.content), "oid": stored.oid}
                    if stored.lfs:
                        entry["lfs"] = {"oid": stored.sha256, "size": len(stored.content), "pointerSize": len(stored.pointer)}
                    entries.append(entry)
                return self._json(entries)
            if method == "POST" and rest[:1] == ["paths-info"] and len(rest) >= 2:
                commit = self._commit(repo, "/".join(rest[1:]))
                body = self._body().decode()
                if self.headers.get("Content-Type", "").startswith("application/json"):
                    wanted = json.loads(body or "{}").get("paths", [])
                else:
                    wanted = parse_qs(body).get("paths", [])
                entries = []
                for path in wanted:
                    stored = commit.files.get(path)
                    if stored is None:
                        continue
                    entry = {"type": "file", "path": path, "size": len(stored.content), "oid": stored.oid}
                    if stored.lfs:
                        entry["lfs"] = {"oid": stored.sha256, "size": len(stored.content), "pointerSize": len(stored.pointer)}
                    entries.append(entry)
                return self._json(entries)
            if method == "GET" and rest == ["refs"]:
                def ref(kind, name, oid):
                    return {"name": name, "ref": f"refs/{kind}/{name}", "targetCommit": oid}

                return self._json(
                    {
                        "branches": [ref("heads", n, o) for n, o in sorted(repo.branches.items())],
                        "tags": [ref("tags", n, o) for n, o in sorted(repo.tags.items())],
                        "converts": [],
                        "pullRequests": [],
                    }
                )
            if method == "GET" and rest[:1] == ["commits"] and len(rest) == 2:
                oid, history = repo.resolve(rest[1]), []
                if oid is None:
                    raise HubError(404, "RevisionNotFound", f"Invalid rev id: {rest[1]}")
                while oid is not None:
                    commit = repo.commits[oid]
                    history.append({"id": oid, "title": commit.title, "message": "", "date": commit.date,
                                    "authors": [{"user": "tester"}]})
                    oid = commit.parent
                return self._json(history)
            if method == "POST" and rest[:1] == ["preupload"] and len(rest) == 2:
                data = json.loads(self._body())
                commit = self._commit(repo, rest[1])
                files = []
                for item in data["files"]:
                    existing = commit.files.get(item["path"])
                    lfs = item["path"].endswith(state.lfs_suffixes)
                    oid = None
                    if existing is not None:
                        oid = existing.sha256 if lfs else git_blob_sha1(existing.content)
                    files.append(
                        {"path": item["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False, "oid": oid}
                    )
                return self._json({"files": files})
            if method == "POST" and rest[:1] == ["commit"] and len(rest) == 2:
                return self._commit_files(repo, rest[1], self._body(), create_pr=query.get("create_pr") in ("1", "true"))
            if method == "POST" and rest[:1] == ["tag"] and len(rest) == 2:
                data = json.loads(self._body())
                commit = self._commit(repo, rest[1])
                if data["tag"] in repo.tags:
                    raise HubError(409, None, f"tag {data['tag']} already exists")
                repo.tags[data["tag"]] = commit.oid
                return self._json({})
            if method == "POST" and rest[:1] == ["branch"] and len(rest) == 2:
                data = json.loads(self._body() or b"{}")
                if rest[1] in repo.branches:
                    raise HubError(409, None, f"branch {rest[1]} already exists")
                start = self._commit(repo, data.get("startingPoint") or "main")
                repo.branches[rest[1]] = start.oid
                return self._json({})
        raise HubError(404, None, f"no route for {method} /api/models/{repo_id}/{'/'.join(rest)}")

    def _commit_files(self, repo: Repo, branch: str, body: bytes, *, create_pr: bool = False) -> None:
        state = self.state
        if branch not in repo.branches and branch not in repo.pulls:
            raise HubError(404, "RevisionNotFound", f"Invalid rev id: {branch} is not a branch")
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        header = lines[0]
        if header.get("key") != "header":
            raise HubError(400, None, "the first NDJSON line must be the header")
        parent = repo.resolve(branch)
        if header["value"].get("parentCommit") not in (None, parent):
            raise HubError(412, None, "parentCommit is not the head of the branch")
        files = dict(repo.commits[parent].files)
        for line in lines[1:]:
            key, value = line["key"], line["value"]
            path = value["path"]
            if path.startswith("/") or ".." in path.split("/"):
                raise HubError(400, None, f"invalid path {path!r}")
            if key == "file":
                content = base64.b64decode(value["content"]) if value.get("encoding") == "base64" else value["content"].encode()
                files[path] = StoredFile(content, lfs=False)
            elif key == "lfsFile":
                content = state.lfs_objects.get(value["oid"])
                if content is None:
                    raise HubError(400, None, f"LFS object {value['oid']} was never uploaded")
                files[path] = StoredFile(content, lfs=True)
            elif key == "deletedFile":
                if path not in files:
                    raise HubError(404, "EntryNotFound", "A file with this name doesn't exist")
                del files[path]
            elif key == "deletedFolder":
                for name in [n for n in files if n.startswith(path.rstrip("/") + "/")]:
                    del files[name]
            else:
                raise HubError(400, None, f"unsupported commit operation {key!r}")
        if "README.md" in files and files["README.md"] is not repo.commits[parent].files.get("README.md"):
            problems = validate_card_metadata(files["README.md"].content.decode("utf-8", "replace"))
            if problems:  # the real Hub refuses the whole commit
                raise HubError(400, None, "Invalid metadata in README.md.\n" + "\n".join(f"- {p}" for p in problems))
        oid = state.new_commit(repo, parent, header["value"].get("summary") or "", files)
        pr_url = None
        if create_pr:
            number = len(repo.pulls) + 1
            repo.pulls[f"refs/pr/{number}"] = oid
            pr_url = f"{self._base()}/{repo.repo_id}/discussions/{number}"
        elif branch in repo.pulls:
            repo.pulls[branch] = oid
        else:
            repo.branches[branch] = oid
        self._json({"commitUrl": f"{self._base()}/{repo.repo_id}/commit/{oid}", "commitOid": oid, "pullRequestUrl": pr_url})

    def _lfs_batch(self, repo_id: str) -> None:
        state = self.state
        data = json.loads(self._body())
        with state.lock:
            self._repo(repo_id, write=data.get("operation") == "upload")
            objects = []
            for item in data["objects"]:
                entry = {"oid": item["oid"], "size": item["size"]}
                if item["oid"] not in state.lfs_objects:
                    entry["actions"] = {"upload": {"href": f"{self._base()}/_lfs/{item['oid']}", "header": {}}}
                objects.append(entry)
        self._json({"transfer": "basic", "objects": objects}, headers={"Content-Type": "application/vnd.git-lfs+json"})

    def _lfs_put(self, oid: str) -> None:
        content = self._body()
        if hashlib.sha256(content).hexdigest() != oid:
            raise HubError(400, None, "uploaded bytes do not match the LFS oid")
        with self.state.lock:
            self.state.lfs_objects[oid] = content
        self._send(200)

    def _resolve(self, method: str, repo_id: str, revision: str, path: str) -> None:
        state = self.state
        with state.lock:
            repo = self._repo(repo_id)
            commit = self._commit(repo, revision)
            stored = commit.files.get(path)
            if stored is None:
                raise HubError(404, "EntryNotFound", f"{path} does not exist at {revision}",
                               {"X-Repo-Commit": commit.oid})
            content = stored.content
            if (repo_id, path) in state.corrupted:
                content = bytes(b ^ 0xFF for b in content[:64]) + content[64:]
        headers = {
            "X-Repo-Commit": commit.oid,
            "ETag": f'"{stored.sha256 if stored.lfs else git_blob_sha1(stored.content)}"',
            "Accept-Ranges": "bytes",
            "Content-Type": "application/octet-stream",
        }
        if stored.lfs:
            headers["X-Linked-Etag"] = f'"{stored.sha256}"'
            headers["X-Linked-Size"] = str(len(stored.content))
        status = 200
        range_header = self.headers.get("Range")
        if range_header and method == "GET":
            match = re.match(r"bytes=(\d+)-(\d*)$", range_header.strip())
            if match:
                start = int(match.group(1))
                end = int(match.group(2)) if match.group(2) else len(content) - 1
                headers["Content-Range"] = f"bytes {start}-{end}/{len(content)}"
                content = content[start : end + 1]
                status = 206
        headers["Content-Length"] = str(len(content))
        self._send(status, content, headers, head=method == "HEAD")


# -- card metadata, checked as the Hub's validate-yaml checks it ----------------------------------

#: The license ids the Hub accepts (its "license" enum), kept apart from zoo_core.card's copy on
#: purpose: the server checks the zoo's cards, it does not trust them.
HUB_LICENSES = frozenset(
    "apache-2.0 mit openrail bigscience-openrail-m creativeml-openrail-m bigscience-bloom-rail-1.0 bigcode-openrail-m "
    "afl-3.0 artistic-2.0 bsl-1.0 bsd bsd-2-clause bsd-3-clause bsd-3-clause-clear c-uda cc cc0-1.0 cc-by-2.0 "
    "cc-by-2.5 cc-by-3.0 cc-by-4.0 cc-by-sa-3.0 cc-by-sa-4.0 cc-by-nc-2.0 cc-by-nc-3.0 cc-by-nc-4.0 cc-by-nd-4.0 "
    "cc-by-nc-nd-3.0 cc-by-nc-nd-4.0 cc-by-nc-sa-2.0 cc-by-nc-sa-3.0 cc-by-nc-sa-4.0 cdla-sharing-1.0 "
    "cdla-permissive-1.0 cdla-permissive-2.0 wtfpl ecl-2.0 epl-1.0 epl-2.0 etalab-2.0 eupl-1.1 eupl-1.2 agpl-3.0 "
    "gfdl gpl gpl-2.0 gpl-3.0 lgpl lgpl-2.1 lgpl-3.0 isc h-research intel-research lppl-1.3c ms-pl apple-ascl "
    "apple-amlr mpl-2.0 odc-by odbl openrail++ osl-3.0 postgresql ofl-1.1 ncsa unlicense zlib pddl lgpl-lr "
    "deepfloyd-if-license fair-noncommercial-research-license llama2 llama3 llama3.1 llama3.2 llama3.3 llama4 gemma "
    "unknown other".split()
)
_DATASET_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")
_URL = re.compile(r"^https?://[^\s/$.?#].[^\s]*$")


def validate_card_metadata(readme: str) -> list[str]:
    """The problems the Hub would report for a README's YAML header (empty: accepted)."""
    import yaml

    if not readme.startswith("---"):
        return []  # no metadata: the Hub accepts it (and shows a warning)
    match = re.match(r"^---\s*\n(.*?)\n---\s*(\n|$)", readme, re.S)
    if not match:
        return ["the metadata block is not closed by a '---' line"]
    try:
        meta = yaml.safe_load(match.group(1)) or {}
    except yaml.YAMLError as error:
        return [f"YAML does not parse: {error}"]
    if not isinstance(meta, dict):
        return ["metadata must be a YAML mapping"]
    errors: list[str] = []

    def strings(key):
        value = meta.get(key)
        if value is None:
            return []
        value = [value] if isinstance(value, str) else value
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            errors.append(f'"{key}" must be a string or an array of strings')
            return []
        return value

    for license_id in strings("license"):
        if license_id not in HUB_LICENSES:
            errors.append(f'"license" must be one of the Hub\'s license identifiers, got "{license_id}"')
    if meta.get("license") == "other":
        if not isinstance(meta.get("license_name"), str) or not re.fullmatch(r"[a-z0-9][a-z0-9.-]*", meta["license_name"]):
            errors.append('"license_name" must be a lowercase slug when "license" is "other"')
        if not isinstance(meta.get("license_link"), str) or not (
                _URL.match(meta["license_link"]) or meta["license_link"].startswith(("LICENSE", "./"))):
            errors.append('"license_link" must be a URL (or a file of the repo) when "license" is "other"')
    for dataset in strings("datasets"):
        if not _DATASET_ID.match(dataset):
            errors.append(f'"datasets" must hold Hub dataset ids (owner/name), got "{dataset}"')
    strings("tags")
    for key in ("library_name", "pipeline_tag", "model_name"):
        if key in meta and not isinstance(meta[key], str):
            errors.append(f'"{key}" must be a string')
    if "model-index" in meta:
        errors += _model_index_problems(meta["model-index"])
    return errors


def _model_index_problems(index) -> list[str]:
    errors: list[str] = []

    def check(obj, where, required, optional):
        if not isinstance(obj, dict):
            errors.append(f"{where} must be an object")
            return False
        for key in required:
            if key not in obj:
                errors.append(f'{where} must have "{key}"')
        for key in set(obj) - set(required) - set(optional):
            errors.append(f'{where} has an unknown key "{key}"')
        return True

    if not isinstance(index, list) or not index:
        return ['"model-index" must be a non-empty array']
    for i, model in enumerate(index):
        where = f"model-index[{i}]"
        if not check(model, where, ("name", "results"), ()):
            continue
        if not isinstance(model.get("name"), str):
            errors.append(f'{where}.name must be a string')
        if not isinstance(model.get("results"), list):
            errors.append(f"{where}.results must be an array")
            continue
        seen = set()
        for j, result in enumerate(model["results"]):
            at = f"{where}.results[{j}]"
            if not check(result, at, ("task", "dataset", "metrics"), ("source",)):
                continue
            task, dataset, metrics = result.get("task"), result.get("dataset"), result.get("metrics")
            if check(task, f"{at}.task", ("type",), ("name",)) and not isinstance(task.get("type"), str):
                errors.append(f"{at}.task.type must be a string")
            if check(dataset, f"{at}.dataset", ("type", "name"), ("config", "split", "revision", "args")):
                for key in ("type", "name", "config", "split", "revision"):
                    if key in dataset and not isinstance(dataset[key], str):
                        errors.append(f"{at}.dataset.{key} must be a string")
            if isinstance(task, dict) and isinstance(dataset, dict):
                key = (task.get("type"), dataset.get("type"), dataset.get("config"), dataset.get("split"))
                if key in seen:
                    errors.append(f"{at} repeats the task, dataset and split of an earlier result (merge them)")
                seen.add(key)
            if not isinstance(metrics, list) or not metrics:
                errors.append(f"{at}.metrics must be a non-empty array")
                continue
            for k, metric in enumerate(metrics):
                mt = f"{at}.metrics[{k}]"
                if not check(metric, mt, ("type", "value"), ("name", "config", "args", "verified", "verifyToken")):
                    continue
                if not isinstance(metric.get("type"), str):
                    errors.append(f"{mt}.type must be a string")
                if not isinstance(metric.get("value"), (int, float, str)) or isinstance(metric.get("value"), bool):
                    errors.append(f"{mt}.value must be a number or a string")
                if "args" in metric and not isinstance(metric["args"], (dict, str)):
                    errors.append(f"{mt}.args must be an object or a string")
            source = result.get("source")
            if source is not None and check(source, f"{at}.source", ("url",), ("name",)):
                if not isinstance(source.get("url"), str) or not _URL.match(source["url"]):
                    errors.append(f"{at}.source.url must be a URL")
    return errors


class HubServer:
    """The test Hub on 127.0.0.1. ``start()`` / ``stop()`` may be called repeatedly (same port)."""

    def __init__(self, port: int = 0, token: str = "hf_zoo_test_token"):
        self.state = HubState(token)
        self.port = port
        self._httpd: Optional[ThreadingHTTPServer] = None
        self._thread: Optional[threading.Thread] = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def token(self) -> str:
        return self.state.token

    @property
    def running(self) -> bool:
        return self._httpd is not None

    def start(self) -> "HubServer":
        if self._httpd is not None:
            return self
        httpd = ThreadingHTTPServer(("127.0.0.1", self.port), _Handler)
        httpd.daemon_threads = True
        httpd.state = self.state  # type: ignore[attr-defined]
        self.port = httpd.server_address[1]
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        assert self._thread is not None
        self._thread.join(timeout=5)
        self._httpd = None
        self._thread = None

    # -- test switches ------------------------------------------------------------------------

    def corrupt(self, repo_id: str, path: str, corrupted: bool = True) -> None:
        """Serve different bytes (same length) for ``path`` in ``repo_id``."""
        with self.state.lock:
            (self.state.corrupted.add if corrupted else self.state.corrupted.discard)((repo_id, path))

    def put_files(self, repo_id: str, files: dict[str, bytes], *, private: bool = False, message: str = "upload") -> str:
        """Create ``repo_id`` if needed and commit ``files`` on main directly (to set up odd repos)."""
        with self.state.lock:
            repo = self.state.repos.get(repo_id)
            if repo is None:
                repo = self.state.repos[repo_id] = Repo(repo_id, private=private)
                parent, current = None, {}
            else:
                parent = repo.branches["main"]
                current = dict(repo.commits[parent].files)
            for path, content in files.items():
                current[path] = StoredFile(content, lfs=path.endswith(self.state.lfs_suffixes))
            oid = self.state.new_commit(repo, parent, message, current)
            repo.branches["main"] = oid
            return oid

    def request_count(self) -> int:
        with self.state.lock:
            return len(self.state.requests)


if __name__ == "__main__":  # python -m zoo_core.testing.hub_server [port]: a throwaway Hub for manual tries
    import sys

    server = HubServer(int(sys.argv[1]) if len(sys.argv) > 1 else 0).start()
    print(f"HF_ENDPOINT={server.url} HF_TOKEN={server.token} HF_HUB_DISABLE_XET=1")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.stop()
