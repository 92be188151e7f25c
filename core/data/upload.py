"""Uploaded dataset files -> one Dataset: an .h5 holding both splits, the course's two files together, or a .zip of
them.

A zip is untrusted input and is unpacked in memory only, after its directory has been checked: at most
``MAX_ZIP_ENTRIES`` entries, no absolute or ``..`` paths, no encrypted entries, nothing but .h5 files (macOS's
``__MACOSX/`` copies and folders are skipped), no archive inside it (by name or by content), no entries sharing
bytes (the overlapping-entry bomb), and the declared sizes within the upload limit, each and together; reading
then stops at the declared size, so an entry that lies about it is refused too. Each .h5 is then parsed like any
other upload, in the limited parser process (core.untrusted via ``load_uploaded_h5``).
"""

from __future__ import annotations

import io
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import PurePosixPath

from .course_h5 import DEFAULT_MAX_BYTES, DEFAULT_MAX_SAMPLES, dataset_name, load_uploaded_h5
from .dataset import Dataset, DatasetError

H5_SUFFIXES = (".h5", ".hdf5")
ZIP_SUFFIX = ".zip"
MAX_ZIP_ENTRIES = 16  # the two course files, plus folders and what an archiver adds beside them
READ_CHUNK = 1 << 20
MAX_NAME = 60  # characters of a dataset's name taken from its file's
# File signatures of archives and compressed streams: an entry that starts like one is an archive whatever its name.
ARCHIVE_MAGIC = (b"PK\x03\x04", b"PK\x05\x06", b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00", b"7z\xbc\xaf\x27\x1c",
                 b"Rar!", b"\x28\xb5\x2f\xfd")
ARCHIVE_SUFFIXES = (".zip", ".gz", ".tgz", ".tar", ".bz2", ".xz", ".7z", ".rar", ".zst", ".jar")
SPLIT_KEYS = ("train_set_x", "train_set_y", "test_set_x", "test_set_y")
MACOS_METADATA = "__MACOSX/"
ONE_OR_TWO = ("Upload the course's two files together (train_catvnoncat.h5 and test_catvnoncat.h5: select both), "
              "one .h5 holding both splits, or a .zip of them.")


@dataclass(frozen=True)
class UploadedFile:
    name: str  # as the user named it (a zip's entry: its name inside the zip)
    data: bytes


def load_uploaded_files(files: list[UploadedFile], *, max_bytes: int = DEFAULT_MAX_BYTES,
                        max_samples: int = DEFAULT_MAX_SAMPLES) -> Dataset:
    """The dataset in one upload of one or more files; DatasetError naming the file and the fix otherwise.

    Zips are unpacked (see the module); then one .h5 must hold both splits, or two must be a train file and a test
    file, told apart by "test" in one name only (train_catvnoncat.h5, test_catvnoncat.h5). max_bytes (the entry
    point passes $INITLAB_MAX_UPLOAD_MB, core.data.max_upload_bytes) bounds each upload, each unpacked file and each zip's unpacked total.
    """
    limit = int(max_bytes)
    h5_files: list[UploadedFile] = []
    for file in files:
        suffix = PurePosixPath(file.name.lower()).suffix
        if suffix == ZIP_SUFFIX:
            h5_files += unzip(file, limit)
        elif suffix in H5_SUFFIXES:
            h5_files.append(file)
        else:
            raise DatasetError(f"{file.name} is neither an .h5 file nor a .zip. {ONE_OR_TWO}", file=file.name)
    if not h5_files:
        raise DatasetError(f"The upload holds no .h5 file. {ONE_OR_TWO}")
    if len(h5_files) > 2:
        names = ", ".join(f.name for f in h5_files)
        raise DatasetError(f"The upload holds {len(h5_files)} .h5 files ({names}); a dataset is one or two. "
                           f"{ONE_OR_TWO}")
    if len(set(f.name for f in h5_files)) < len(h5_files):
        raise DatasetError(f"The upload holds {h5_files[0].name} twice. {ONE_OR_TWO}", file=h5_files[0].name)
    if len(h5_files) == 1:
        only = h5_files[0]
        try:
            return load_uploaded_h5(only.data, name=dataset_name(only.name)[:MAX_NAME], file_name=only.name,
                                    max_bytes=limit, max_samples=max_samples)
        except DatasetError as e:
            if e.key in SPLIT_KEYS and str(e).startswith(f"uploaded file {only.name!r} has no key"):
                raise DatasetError(f"{only.name} has no {e.key}: it holds one split only. {ONE_OR_TWO}",
                                   file=only.name, key=e.key) from None
            raise
    train, test = train_and_test(h5_files)
    return load_uploaded_h5(train.data, name=dataset_name(train.name)[:MAX_NAME], file_name=train.name,
                            test_data=test.data, test_file_name=test.name, max_bytes=limit, max_samples=max_samples)


def train_and_test(pair: list[UploadedFile]) -> tuple[UploadedFile, UploadedFile]:
    tests = [f for f in pair if "test" in PurePosixPath(f.name).name.lower()]
    if len(tests) != 1:
        a, b = (f.name for f in pair)
        raise DatasetError(f"Of the two files {a} and {b}, {'both' if tests else 'neither'} has \"test\" in its "
                           "name, so which one is the test split is unclear. Name them as the course does: "
                           "train_catvnoncat.h5 and test_catvnoncat.h5.", file=a)
    test = tests[0]
    return next(f for f in pair if f is not test), test


def unzip(archive: UploadedFile, limit: int) -> list[UploadedFile]:
    """The .h5 files in an uploaded zip, read in memory after the checks the module lists; DatasetError if any
    fails."""
    name = archive.name

    def refused(problem: str) -> DatasetError:
        return DatasetError(f"{name} was refused: {problem}. {ONE_OR_TWO}", file=name)

    if len(archive.data) > limit:
        raise refused(f"it is larger than the upload limit of {limit / 2**20:,.0f} MB")
    try:
        zf = zipfile.ZipFile(io.BytesIO(archive.data))
        entries = zf.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError):
        raise refused("it is not a readable zip archive") from None
    with zf:
        if len(entries) > MAX_ZIP_ENTRIES:
            raise refused(f"it has {len(entries):,} entries, more than {MAX_ZIP_ENTRIES}")
        if sum(e.compress_size for e in entries) > len(archive.data):
            raise refused("its entries share bytes (a zip bomb's trick)")
        wanted = [e for e in entries if not e.is_dir() and not e.filename.startswith(MACOS_METADATA)]
        for entry in wanted:
            check_entry(entry, limit, refused)
        if sum(e.file_size for e in wanted) > limit:
            raise refused(f"its files unpack to more than the upload limit of {limit / 2**20:,.0f} MB together")
        return [UploadedFile(PurePosixPath(e.filename).name, read_entry(zf, e, refused)) for e in wanted]


def check_entry(entry: zipfile.ZipInfo, limit: int, refused) -> None:
    path = entry.filename
    parts = PurePosixPath(path).parts
    if (path.startswith(("/", "\\")) or "\\" in path or ":" in path or ".." in parts
            or not path.isprintable()):
        raise refused(f"the entry {path!r} has a path that points outside the archive or is not a plain name")
    if entry.flag_bits & 0x1:
        raise refused(f"{path} is encrypted")
    suffix = PurePosixPath(path.lower()).suffix
    if suffix in ARCHIVE_SUFFIXES:
        raise refused(f"it holds another archive ({path}); zip the .h5 files themselves")
    if suffix not in H5_SUFFIXES:
        raise refused(f"it holds {path}, which is not an .h5 file; zip only the course's .h5 files")
    if entry.file_size > limit:
        raise refused(f"{path} unpacks to {entry.file_size / 2**20:,.1f} MB, more than the upload limit of "
                      f"{limit / 2**20:,.0f} MB")


def read_entry(zf: zipfile.ZipFile, entry: zipfile.ZipInfo, refused) -> bytes:
    """The entry's bytes, never more than it declares (zipfile stops there and checks the CRC)."""
    chunks, total = [], 0
    try:
        with zf.open(entry) as stream:
            while chunk := stream.read(READ_CHUNK):
                total += len(chunk)
                if total > entry.file_size:
                    raise refused(f"{entry.filename} holds more than the size its archive declares")
                chunks.append(chunk)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, OSError) as e:
        raise refused(f"{entry.filename} could not be unpacked ({type(e).__name__})") from None
    data = b"".join(chunks)
    if data.startswith(ARCHIVE_MAGIC):
        raise refused(f"{entry.filename} is itself an archive; zip the .h5 files themselves")
    return data
