"""The pure parts of file transfer: content type by magic bytes, file-name sanitising, the streamed multipart
body, the approval-file size limits and the reading of an instance's file widgets."""

from __future__ import annotations

import io
import json
import zipfile

import pytest
from python_multipart.multipart import parse_options_header

from bridge.attachments import ContentKind, kind_of_head, safe_file_name, sniff
from bridge.hooks._files import FilePart, FileRefusedError, MultipartBody, stream_size
from bridge.hooks.feishu_files import MB, check_size, files_of_instance
from bridge.hooks.hubspot_files import crm_file_of


def _zip(*names: str) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name in names:
            archive.writestr(name, b"<x/>")
    return out.getvalue()


@pytest.mark.parametrize(
    ("content", "kind"),
    [
        (b"%PDF-1.7\n%\xe2\xe3", ContentKind.PDF),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", ContentKind.JPEG),
        (b"\x89PNG\r\n\x1a\n\x00\x00", ContentKind.PNG),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(100), ContentKind.OFFICE_LEGACY),
        (b"MZ\x90\x00\x03", ContentKind.EXECUTABLE),
        (b"\x7fELF\x02\x01", ContentKind.EXECUTABLE),
        (b"plain text", ContentKind.UNKNOWN),
        (b"", ContentKind.UNKNOWN),
        (_zip("OFD.xml", "Doc_0/Document.xml"), ContentKind.OFD),
        (_zip("[Content_Types].xml", "word/document.xml"), ContentKind.DOCX),
        (_zip("[Content_Types].xml", "xl/workbook.xml"), ContentKind.XLSX),
        (_zip("[Content_Types].xml", "ppt/presentation.xml"), ContentKind.PPTX),
        (_zip("readme.txt"), ContentKind.ZIP),
        (b"PK\x03\x04 not really a zip", ContentKind.UNKNOWN),
    ],
)
def test_content_kind_is_told_by_the_bytes(content: bytes, kind: ContentKind) -> None:
    stream = io.BytesIO(b"prefix" + content)
    stream.seek(6)
    assert sniff(stream) is kind
    assert stream.tell() == 6  # left where it was


def test_a_pdf_name_does_not_make_an_executable_a_pdf() -> None:
    assert kind_of_head(b"MZ\x90\x00") is ContentKind.EXECUTABLE


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("合同扫描件.pdf", "合同扫描件.pdf"),
        ("../../etc/passwd", "_.._etc_passwd"),
        ("..\\..\\boot.ini", "_.._boot.ini"),
        ("/abs/path/发票.pdf", "_abs_path_发票.pdf"),
        ("invoice\u202efdp.exe", "invoicefdp.exe"),  # a right-to-left override hid the real extension
        ("a\u2066b\u2069c\u200b.pdf", "abc.pdf"),
        ("line\nbreak\r\x00\x07.pdf", "linebreak.pdf"),
        ('what?<is>:"this"|*.pdf', "what__is___this___.pdf"),
        ("  .hidden.pdf  ", "hidden.pdf"),
        ("..", "file"),
        ("", "file"),
        ("\u202e", "file"),
        ("e\u0301.pdf", "\u00e9.pdf"),  # NFC
    ],
)
def test_file_names_are_sanitised(name: str, safe: str) -> None:
    assert safe_file_name(name) == safe


def test_a_long_name_keeps_its_extension() -> None:
    safe = safe_file_name("合" * 300 + ".pdf")
    assert len(safe) == 200
    assert safe.endswith(".pdf")


def test_multipart_body_is_exact_and_starts_over() -> None:
    content = bytes(range(256)) * 9000  # > 2 chunks
    stream = io.BytesIO(b"skip" + content)
    stream.seek(4)
    part = FilePart("file", 'a"b.pdf', stream, stream_size(stream))
    body = MultipartBody([("fileName", "合同.pdf"), ("options", json.dumps({"access": "PRIVATE"}))], part)
    first = b"".join(body)
    assert len(first) == len(body)
    assert b"".join(body) == first  # a resend sends the same bytes
    _, params = parse_options_header(body.content_type)
    boundary = params[b"boundary"]
    parts = first.split(b"--" + boundary)
    assert parts[-1] == b"--\r\n"
    assert "合同.pdf".encode() in parts[1]
    assert parts[3].endswith(b"\r\n\r\n" + content + b"\r\n")
    assert b'filename="a%22b.pdf"' in parts[3]


def test_multipart_body_refuses_a_stream_shorter_than_announced() -> None:
    body = MultipartBody([], FilePart("file", "x", io.BytesIO(b"abc"), 10))
    with pytest.raises(OSError, match="7 bytes before"):
        b"".join(body)


def test_a_stream_that_cannot_seek_is_refused() -> None:
    class Pipe(io.RawIOBase):
        def readable(self) -> bool:
            return True

    with pytest.raises(FileRefusedError) as caught:
        stream_size(Pipe())  # type: ignore[arg-type]
    assert "文件" in caught.value.reason_zh


@pytest.mark.parametrize(
    ("kind", "size", "refused"),
    [
        ("attachment", 50 * MB, False),
        ("attachment", 50 * MB + 1, True),
        ("image", 10 * MB, False),
        ("image", 10 * MB + 1, True),
    ],
)
def test_approval_file_limits(kind: str, size: int, refused: bool) -> None:
    if not refused:
        check_size(size, kind)
        return
    with pytest.raises(FileRefusedError) as caught:
        check_size(size, kind)
    limit = "50 MB" if kind == "attachment" else "10 MB"
    assert caught.value.reason_zh.startswith("文件过大：")
    assert limit in caught.value.reason_zh


def test_instance_file_widgets_are_read_as_a_list_or_a_joined_string() -> None:
    form = [
        {"id": "reason", "type": "input", "value": "差旅"},
        {
            "id": "attachments",
            "type": "attachmentV2",
            "value": ["https://x/a/%E5%8F%91.pdf?s=1", "https://x/b/b.ofd"],
        },
        {
            "id": "images",
            "type": "image",
            "value": "https://x/i/1.png,https://x/i/2.jpg",
            "ext": "1.png,2.jpg",
        },
    ]
    files = files_of_instance({"instance_code": "I1", "form": json.dumps(form)})
    assert [(f.widget_id, f.index, f.kind, f.name) for f in files] == [
        ("attachments", 0, "attachment", "发.pdf"),  # no ext: the names come from the URLs
        ("attachments", 1, "attachment", "b.ofd"),
        ("images", 0, "image", "1.png"),
        ("images", 1, "image", "2.jpg"),
    ]
    assert {f.instance_code for f in files} == {"I1"}
    assert files_of_instance({"instance_code": "I2"}) == []


def test_crm_file_answer() -> None:
    found = crm_file_of(
        {"id": "42", "name": "合同", "extension": "pdf", "size": 10, "fileMd5": "ab", "access": "PRIVATE"}
    )
    assert (found.id, found.file_name, found.md5, found.path) == ("42", "合同.pdf", "ab", None)
