"""Feishu approval files for :class:`~bridge.hooks.oa.OaHook`: upload, the files of an instance, download.

Vendor knowledge kept here: ``POST /approval/openapi/v2/file/upload``
(multipart ``name`` with its extension, ``type`` = ``attachment`` | ``image``,
``content``; one file per call; 50 MB for an attachment, 10 MB for an image)
answers ``data.code``, the code an ``attachmentV2`` / ``image`` widget of a
create takes (an array of codes). An instance detail answers those widgets
with download URLs (a list, or one ``,``-joined string) that expire 12 hours
after the read, and their file names in ``ext`` (``,``-joined): reading the
instance again is how a URL is refreshed. The app needs the approval
permission the other approval calls use (访问审批应用).

The size limits are checked before any call (:class:`FileRefusedError` with a
Chinese reason), so a file Feishu would refuse costs no request. An upload is a
write without a key: an interruption is
:class:`~bridge.hooks.errors.AmbiguousWriteError`; uploading again only leaves
an unused code behind (a code is nothing until a create names it).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO, Literal, Protocol
from urllib.parse import unquote, urlsplit

from bridge.attachments import safe_file_name
from bridge.hooks._base import VendorHook
from bridge.hooks._files import (
    Download,
    FileFacts,
    FilePart,
    FileRefusedError,
    MultipartBody,
    fetch_refreshing,
    stream_size,
)
from bridge.hooks._http import WRITE_ONCE, ApiClient
from bridge.hooks.errors import BadResponseError, NotFoundError
from bridge.hooks.feishu_codec import instance_code, instance_form

FILE_UPLOAD = "/approval/openapi/v2/file/upload"
ATTACHMENT_DOWNLOAD = "/lark-approval-attachment/{type}/{day}/{code}/{name}"  # as counted in ``api_calls``
MB = 1024 * 1024
SIZE_LIMITS = {"attachment": 50 * MB, "image": 10 * MB}  # "附件上传大小限制为 50 M，图片上传大小为 10 M"
KIND_ZH = {"attachment": "附件", "image": "图片"}
# Widget types holding files, and the kind of file each takes.
FILE_WIDGETS = {
    "attachmentV2": "attachment",
    "attachment": "attachment",
    "image": "image",
    "imageV2": "image",
}
FileKind = Literal["attachment", "image"]


@dataclass(frozen=True)
class OaFile:
    """One file of an instance: where it sits (instance, widget, position) and the URL of that read."""

    instance_code: str
    widget_id: str
    index: int
    kind: str  # attachment | image
    name: str
    url: str

    @property
    def key(self) -> tuple[str, int]:
        """The file's place in its instance (what a re-read of the instance finds it by)."""
        return self.widget_id, self.index


def _listed(raw: object) -> list[str]:
    """A widget's URLs or names: a list, or one ``,``-joined string."""
    if isinstance(raw, list):
        return [str(v) for v in raw if isinstance(v, str) and v]
    if isinstance(raw, str) and raw:
        return [v for v in raw.split(",") if v]
    return []


def _name_in_url(url: str) -> str:
    return unquote(urlsplit(url).path.rsplit("/", 1)[-1]) or "file"


def widget_files(code: str, widget: Mapping[str, Any]) -> list[OaFile]:
    """The files of one form widget (none when it is not a file widget); names from ``ext`` when it has
    one per URL, else from the URLs (a name holding a comma makes ``ext`` ambiguous)."""
    kind = FILE_WIDGETS.get(str(widget.get("type") or ""))
    if kind is None:
        return []
    urls, names = _listed(widget.get("value")), _listed(widget.get("ext"))
    if len(names) != len(urls):
        names = [_name_in_url(u) for u in urls]
    wid = str(widget.get("id") or widget.get("custom_id") or "")
    return [
        OaFile(code, wid, i, kind, safe_file_name(name), url)
        for i, (url, name) in enumerate(zip(urls, names, strict=True))
    ]


def files_of_instance(instance: Mapping[str, object]) -> list[OaFile]:
    """Every file of an instance detail, widget by widget, in form order."""
    form, code = instance_form(instance), str(instance_code(instance) or "")
    if isinstance(form, str):
        try:
            form = json.loads(form)
        except ValueError:
            raise BadResponseError("the instance's form is not JSON", system="oa") from None
    if not isinstance(form, list):
        return []
    return [f for w in form if isinstance(w, Mapping) for f in widget_files(code, w)]


def file_widget(widget_id: str, codes: list[str], kind: FileKind = "attachment") -> dict[str, Any]:
    """A create's form entry putting uploaded file codes into a file widget (an array of codes)."""
    return {
        "id": widget_id,
        "type": "attachmentV2" if kind == "attachment" else "image",
        "value": list(codes),
    }


def check_size(size: int, kind: str) -> None:
    """Refuse a file over Feishu's limit for its kind before anything is sent."""
    if kind not in SIZE_LIMITS:
        raise ValueError(f"kind must be one of {sorted(SIZE_LIMITS)}, not {kind!r}")
    limit = SIZE_LIMITS[kind]
    if size > limit:
        raise FileRefusedError(
            f"{kind} of {size} bytes refused: over the {limit // MB} MB limit of approval files",
            reason_zh=f"文件过大：{KIND_ZH[kind]}不能超过 {limit // MB} MB（本文件 {size / MB:.1f} MB）",
        )


class _ReadsInstances(Protocol):
    """What the download needs of OaHook besides its client (structural, so this module does not import oa.py)."""

    @property
    def client(self) -> ApiClient: ...

    def get_instance(self, instance_code: str) -> dict[str, Any]: ...


class OaFiles(VendorHook):
    """The file methods of :class:`~bridge.hooks.oa.OaHook` (a mixin: the hook inherits them)."""

    def upload_attachment(self, stream: BinaryIO, *, name: str, kind: FileKind = "attachment") -> str:
        """Upload the rest of ``stream`` (seekable, read chunk by chunk while sent) as ``name`` (sanitised);
        the file code for an ``attachment`` / ``image`` widget. Over the kind's limit:
        :class:`FileRefusedError` and no request."""
        size = stream_size(stream)
        check_size(size, kind)
        safe = safe_file_name(name)
        body = MultipartBody([("name", safe), ("type", kind)], FilePart("content", safe, stream, size))
        answer = self.call("POST", FILE_UPLOAD, body=body, send=WRITE_ONCE).body
        data = answer.get("data") if isinstance(answer, Mapping) else None
        code = data.get("code") if isinstance(data, Mapping) else None
        if not isinstance(code, str) or not code:
            raise BadResponseError("the upload answer has no file code", system="oa", path=FILE_UPLOAD)
        self.vendor_log.info("oa: %s uploaded (%d bytes): code %s", kind, size, code)
        return code

    def file_widget(self, widget_id: str, codes: list[str], kind: FileKind = "attachment") -> dict[str, Any]:
        """The form entry of a create that puts these file codes into the widget ``widget_id``."""
        return file_widget(widget_id, codes, kind)

    def instance_files(self, instance: Mapping[str, object]) -> list[OaFile]:
        """The files in an instance detail's attachment and image widgets (with that read's URLs)."""
        return files_of_instance(instance)

    def download_attachment(self: _ReadsInstances, file: OaFile, dest: BinaryIO) -> FileFacts:
        """Stream ``file`` into ``dest`` with its SHA-256, MD5 and size; an expired URL is refreshed once by
        reading the instance again (:class:`NotFoundError` when the file is no longer in its place)."""

        def fresh() -> Download:
            again = {f.key: f for f in files_of_instance(self.get_instance(file.instance_code))}
            found = again.get(file.key)
            if found is None:
                raise NotFoundError(
                    f"the file is no longer in widget {file.widget_id} of the instance", system="oa"
                )
            return Download(found.url, ATTACHMENT_DOWNLOAD)

        return fetch_refreshing(self.client, fresh, dest, Download(file.url, ATTACHMENT_DOWNLOAD))


__all__ = ["OaFile", "OaFiles", "file_widget", "files_of_instance", "widget_files"]
