"""Uploading a dataset: the course's two files in one upload (either order) or zipped, and hostile zips refused before
anything is unpacked or parsed (core/data/upload.py)."""

from __future__ import annotations

import io
import struct
import zipfile

import h5py
import numpy as np
import pytest

from core.data import DatasetError, UploadedFile, load_uploaded_files
from tests.conftest import SHARED_DATA

LIMIT = 1 << 20  # the upload limit the hostile zips are checked against


def course_files() -> list[UploadedFile]:
    if not (SHARED_DATA / "train_catvnoncat.h5").exists():
        pytest.skip(f"the course's cat files are not in {SHARED_DATA}")
    return [UploadedFile(n, (SHARED_DATA / n).read_bytes()) for n in ("train_catvnoncat.h5", "test_catvnoncat.h5")]


def zipped(entries: dict[str, bytes], name: str = "data.zip", method=zipfile.ZIP_DEFLATED) -> UploadedFile:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as zf:
        for entry, data in entries.items():
            zf.writestr(zipfile.ZipInfo(entry) if not entry.endswith("/") else entry, data, compress_type=method)
    return UploadedFile(name, buffer.getvalue())


def tiny_h5(*splits: str) -> bytes:
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        for split in splits:
            f[f"{split}_set_x"] = np.arange(24, dtype=np.uint8).reshape(6, 2, 2)
            f[f"{split}_set_y"] = np.arange(6) % 2
    return buffer.getvalue()


@pytest.mark.parametrize("order", [1, -1], ids=["train-first", "test-first"])
def test_the_course_files_together_are_the_course_data(order, cat_data):
    uploaded = load_uploaded_files(course_files()[::order])
    assert uploaded.name == "catvnoncat"
    assert uploaded.fingerprint() == cat_data.fingerprint()  # the very data the folder loader reads


def test_a_zip_of_the_course_files_from_a_mac_is_the_course_data(cat_data):
    train, test = course_files()
    archive = zipped({"cats/": b"", f"cats/{train.name}": train.data, f"cats/{test.name}": test.data,
                      f"__MACOSX/cats/._{train.name}": b"\x00\x05\x16\x07"})  # folder and Finder's metadata
    assert load_uploaded_files([archive]).fingerprint() == cat_data.fingerprint()


def test_one_course_file_alone_asks_for_both():
    with pytest.raises(DatasetError, match=r"train_only\.h5 has no test_set_x.*select both.*\.zip"):
        load_uploaded_files([UploadedFile("train_only.h5", tiny_h5("train"))])


def test_two_files_need_a_train_and_a_test_name():
    files = [UploadedFile("a.h5", tiny_h5("train")), UploadedFile("b.h5", tiny_h5("test"))]
    with pytest.raises(DatasetError, match="neither has \"test\" in its name"):
        load_uploaded_files(files)
    renamed = [UploadedFile("a.h5", files[0].data), UploadedFile("b_test.h5", files[1].data)]
    assert load_uploaded_files(renamed).x_test.shape == (4, 6)


def lying_about_its_size(real: bytes, declared: int) -> UploadedFile:
    """A one-entry stored zip whose headers declare `declared` bytes for an entry of `real`."""
    data = bytearray(zipped({"a.h5": real}, method=zipfile.ZIP_STORED).data)
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):  # uncompressed size: local, central
        at = data.index(signature)
        data[at + offset:at + offset + 4] = struct.pack("<I", declared)
    return UploadedFile("lies.zip", bytes(data))


def sharing_bytes(copies: int) -> UploadedFile:
    """The overlapping-entry bomb: one stored entry listed `copies` times in the central directory."""
    data = zipped({"a.h5": bytes(range(256)) * 64}, method=zipfile.ZIP_STORED).data
    central = data.index(b"PK\x01\x02")
    end = data.index(b"PK\x05\x06")
    record = data[central:end]
    records = b"".join(record.replace(b"a.h5", f"{i}.h5"[-4:].encode()) for i in range(copies))
    eocd = bytearray(data[end:])
    eocd[8:12] = struct.pack("<HH", copies, copies)
    eocd[12:16] = struct.pack("<I", len(records))
    return UploadedFile("overlap.zip", data[:central] + records + bytes(eocd))


def encrypted() -> UploadedFile:
    """A zip whose entry is marked encrypted (general-purpose flag bit 0, in the local and central headers)."""
    data = bytearray(zipped({"a.h5": b"x" * 100}).data)
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = data.index(signature) + offset
        data[at] |= 0x1
    return UploadedFile("secret.zip", bytes(data))


HOSTILE_ZIPS = {
    "bomb": (lambda: zipped({"a.h5": bytes(2 * LIMIT)}), r"a\.h5 unpacks to 2\.0 MB, more than the upload limit"),
    "bomb-in-parts": (lambda: zipped({"a.h5": bytes(LIMIT // 2 + 1), "b.h5": bytes(LIMIT // 2 + 1)}),
                      "more than the upload limit of 1 MB together"),
    "lying-size": (lambda: lying_about_its_size(b"x" * 5000, 100), r"a\.h5 could not be unpacked"),
    "shared-bytes": (lambda: sharing_bytes(8), "share bytes"),
    "parent-path": (lambda: zipped({"../evil.h5": b"x"}), "path that points outside"),
    "absolute-path": (lambda: zipped({"/etc/evil.h5": b"x"}), "path that points outside"),
    "drive-path": (lambda: zipped({"C:evil.h5": b"x"}), "path that points outside"),
    "too-many": (lambda: zipped({f"{i}.h5": b"x" for i in range(17)}), "17 entries, more than 16"),
    "nested-by-name": (lambda: zipped({"inner.zip": b"x"}), r"another archive \(inner\.zip\)"),
    "nested-by-content": (lambda: zipped({"a.h5": zipped({"b.h5": b"x"}).data}), r"a\.h5 is itself an archive"),
    "not-h5": (lambda: zipped({"notes.txt": b"x"}), r"notes\.txt, which is not an \.h5 file"),
    "encrypted": (encrypted, r"a\.h5 is encrypted"),
    "not-a-zip": (lambda: UploadedFile("junk.zip", b"PK\x03\x04 not really"), "not a readable zip archive"),
}


@pytest.mark.parametrize("case", list(HOSTILE_ZIPS))
def test_a_hostile_zip_is_refused_before_parsing(case):
    build, message = HOSTILE_ZIPS[case]
    archive = build()
    with pytest.raises(DatasetError, match=message) as refused:
        load_uploaded_files([archive], max_bytes=LIMIT)
    assert refused.value.file == archive.name and "select both" in str(refused.value)
