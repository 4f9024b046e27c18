"""A thin REST client for the few Label Studio endpoints the review needs.

Plain httpx with `Authorization: Token <token>` (a legacy API token: the
server must run with LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN=true). The endpoints
are stable across Label Studio 1.x, which keeps this side independent of the
server's own virtualenv and of label-studio-sdk's generated client.
"""

from __future__ import annotations

import os
from typing import Any

import httpx

from datasets_cards.errors import ConfigurationError

URL_ENV = "LABEL_STUDIO_URL"
TOKEN_ENVS = ("LABEL_STUDIO_API_KEY", "LABEL_STUDIO_USER_TOKEN")
PAGE_SIZE = 100


class LabelStudioError(RuntimeError):
    """The server answered with an error; the message carries its reply."""


class LabelStudioUnreachableError(LabelStudioError, ConfigurationError):
    """Nothing answers at the configured URL (refused, unknown host): a retry finds the same."""


def settings_from_env(url: str | None = None, token: str | None = None) -> tuple[str | None, str | None]:
    """URL and token: explicit values first, then LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY / _USER_TOKEN."""
    url = url or os.environ.get(URL_ENV) or None
    token = token or next((os.environ[k] for k in TOKEN_ENVS if os.environ.get(k)), None)
    return url, token


class LabelStudioClient:
    def __init__(self, url: str, token: str, *, timeout: float = 60.0):
        if not token:
            raise ValueError(f"a Label Studio API token is needed (set {' or '.join(TOKEN_ENVS)})")
        self.url = url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.url, headers={"Authorization": f"Token {token}"}, timeout=timeout, follow_redirects=True
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> LabelStudioClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _call(self, method: str, path: str, **kwargs) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except (httpx.ConnectError, httpx.UnsupportedProtocol) as e:
            raise LabelStudioUnreachableError(f"Label Studio at {self.url} is not reachable ({method} {path}): {e}") from e
        except httpx.HTTPError as e:  # a timeout or a dropped connection: worth a retry
            raise LabelStudioError(f"Label Studio at {self.url} is not reachable ({method} {path}): {e}") from e
        if response.status_code >= 400:
            raise LabelStudioError(f"{method} {path} → {response.status_code}: {response.text[:500]}")
        return response.json() if response.content else None

    # projects
    def projects(self) -> list[dict[str, Any]]:
        found, page = [], 1
        while True:
            reply = self._call("GET", "/api/projects", params={"page": page, "page_size": PAGE_SIZE})
            results = reply["results"] if isinstance(reply, dict) else reply
            found += results
            if not isinstance(reply, dict) or not reply.get("next"):
                return found
            page += 1

    def find_project(self, title: str) -> dict[str, Any] | None:
        return next((p for p in self.projects() if p.get("title") == title), None)

    def create_project(
        self, title: str, label_config: str, description: str = "", annotations_per_task: int = 1
    ) -> dict[str, Any]:
        # Sequential sampling: verifiers get tasks in import order (disagreements were imported first).
        return self._call(
            "POST", "/api/projects",
            json={"title": title, "label_config": label_config, "description": description,
                  "show_skip_button": True, "maximum_annotations": annotations_per_task,
                  "sampling": "Sequential sampling"},
        )

    # tasks
    def import_tasks(self, project_id: int, tasks: list[dict[str, Any]]) -> dict[str, Any]:
        """Bulk import, predictions included (synchronous on a server without a queue)."""
        return self._call("POST", f"/api/projects/{project_id}/import", json=tasks)

    def export(self, project_id: int) -> list[dict[str, Any]]:
        """Every task of the project with its annotations (Label Studio's JSON export)."""
        return self._call(
            "GET", f"/api/projects/{project_id}/export", params={"exportType": "JSON", "download_all_tasks": "true"}
        )

    def create_annotation(self, task_id: int, result: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
        return self._call("POST", f"/api/tasks/{task_id}/annotations", json={"result": result, **fields})

    # storage and users
    def local_storages(self, project_id: int) -> list[dict[str, Any]]:
        return self._call("GET", "/api/storages/localfiles", params={"project": project_id})

    def add_local_storage(self, project_id: int, path: str, title: str) -> dict[str, Any]:
        """Register `path` as a local-files source of the project (never synced: it only grants access)."""
        return self._call(
            "POST", "/api/storages/localfiles",
            json={"project": project_id, "path": path, "title": title, "use_blob_urls": True,
                  "regex_filter": r".*\.mp4$"},
        )

    def create_user(self, email: str, **fields: Any) -> dict[str, Any]:
        return self._call("POST", "/api/users", json={"email": email, "username": email, **fields})

    def users(self) -> list[dict[str, Any]]:
        return self._call("GET", "/api/users")

    def get(self, path: str, **params: Any) -> httpx.Response:
        """A raw GET relative to the server (e.g. a /data/local-files/ media URL)."""
        return self._http.get(path, params=params or None)
