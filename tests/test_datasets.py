"""Tests for core/datasets.py: shipped data, generators, the course files, and every validation error.

Bad files are built here in tmp_path. The course's cat files are read from ../shared/data beside the repository
and never copied; the tests that need them skip when that folder is absent.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import io
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from core.data import registry as D
from core.data import Dataset, DatasetError, load_course_h5, load_dataset, load_uploaded_h5, max_upload_bytes

REPO = Path(__file__).resolve().parents[1]
COURSE_DIR = Path(__file__).resolve().parents[2] / "shared" / "data"
COURSE_TRAIN = COURSE_DIR / "train_catvnoncat.h5"
COURSE_TEST = COURSE_DIR / "test_catvnoncat.h5"
needs_course = pytest.mark.skipif(
    not (COURSE_TRAIN.is_file() and COURSE_TEST.is_file()),
    reason=f"the course's cat files are not in {COURSE_DIR} (they are never shipped with the repository)",
)

PNG_BYTES = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(range(64))


# ------------------------------------------------------------------------------------------------ helpers


def course_arrays(m_train: int = 6, m_test: int = 4, shape=(4, 4, 3), seed: int = 0) -> dict:
    rs = np.random.RandomState(seed)
    return {
        "train_set_x": rs.randint(0, 256, size=(m_train, *shape)).astype(np.uint8),
        "train_set_y": np.arange(m_train, dtype=np.int64) % 2,
        "test_set_x": rs.randint(0, 256, size=(m_test, *shape)).astype(np.uint8),
        "test_set_y": (np.arange(m_test, dtype=np.int64) + 1) % 2,
        "list_classes": np.array([b"no", b"yes"]),
    }


def write_h5(path: Path, arrays: dict, attrs: dict | None = None) -> Path:
    with h5py.File(path, "w") as f:
        for key, value in arrays.items():
            f.create_dataset(key, data=value)
        for key, value in (attrs or {}).items():
            f.attrs[key] = value
    return path


def bad_file(tmp_path: Path, **changes) -> Path:
    """A one-file course layout with some keys replaced (value None drops the key)."""
    arrays = course_arrays()
    for key, value in changes.items():
        if value is None:
            arrays.pop(key)
        else:
            arrays[key] = value
    return write_h5(tmp_path / "bad.h5", arrays)


def expect_error(path: Path, *needles: str, key: str | None = None, **kwargs) -> DatasetError:
    """load_course_h5(path) must raise a DatasetError naming the file, holding the needles and pointing at key."""
    with pytest.raises(DatasetError) as info:
        load_course_h5(path, **kwargs)
    message = str(info.value)
    assert path.name in message, f"file name not in: {message}"
    for needle in needles:
        assert needle in message, f"{needle!r} not in: {message}"
    if key is not None:
        assert info.value.key == key, f"key {info.value.key!r} != {key!r}: {message}"
    return info.value


@pytest.fixture(autouse=True)
def _fresh_cache(monkeypatch):
    """No test sees another's cached datasets or environment."""
    monkeypatch.delenv("INITLAB_DATA_DIR", raising=False)
    monkeypatch.delenv("INITLAB_MAX_UPLOAD_MB", raising=False)
    D._load_cached.cache_clear()
    yield
    D._load_cached.cache_clear()


# ------------------------------------------------------------------------------------------ a good small file


def test_small_file_is_flattened_like_the_course(tmp_path):
    arrays = course_arrays()
    ds = load_course_h5(write_h5(tmp_path / "train_toy.h5", arrays))
    raw = arrays["train_set_x"]
    expected = np.array([[raw[j].flat[i] / 255.0 for j in range(6)] for i in range(48)])  # pixel i of example j
    np.testing.assert_array_equal(ds.x_train, expected)
    assert ds.x_train.dtype == np.float64 and ds.y_train.dtype == np.int64
    assert ds.y_train.tolist() == [[0, 1, 0, 1, 0, 1]]
    assert ds.y_test.tolist() == [[1, 0, 1, 0]]
    assert ds.classes == ("no", "yes")
    assert ds.image_shape == (4, 4, 3)
    assert ds.name == "toy"
    assert (ds.n_features, ds.n_classes, ds.output_size) == (48, 2, 1)


def test_train_and_test_in_two_files(tmp_path):
    arrays = course_arrays()
    train = write_h5(tmp_path / "tr.h5", {k: arrays[k] for k in ("train_set_x", "train_set_y", "list_classes")})
    test = write_h5(tmp_path / "te.h5", {k: arrays[k] for k in ("test_set_x", "test_set_y")})
    ds = load_course_h5(train, test)
    assert ds.x_train.shape == (48, 6) and ds.x_test.shape == (48, 4)
    np.testing.assert_array_equal(ds.x_test[:, 2], arrays["test_set_x"][2].ravel() / 255.0)


def test_pixel_max_attribute_sets_the_scale(tmp_path):
    arrays = course_arrays()
    arrays["train_set_x"] = arrays["train_set_x"] % 17
    arrays["test_set_x"] = arrays["test_set_x"] % 17
    ds = load_course_h5(write_h5(tmp_path / "d.h5", arrays, {"pixel_max": 16}))
    np.testing.assert_array_equal(ds.x_train[:, 0], arrays["train_set_x"][0].ravel() / 16.0)


def test_without_list_classes_classes_are_numbered(tmp_path):
    arrays = course_arrays()
    arrays.pop("list_classes")
    arrays["train_set_y"] = np.array([0, 1, 2, 3, 0, 1])
    ds = load_course_h5(write_h5(tmp_path / "n.h5", arrays))
    assert ds.classes == ("0", "1", "2", "3") and ds.output_size == 4


def test_dataset_arrays_are_read_only(tmp_path):
    ds = load_course_h5(write_h5(tmp_path / "r.h5", course_arrays()))
    with pytest.raises(ValueError):
        ds.x_train[0, 0] = 5.0


# --------------------------------------------------------------------------------------- validation errors


def test_missing_key(tmp_path):
    err = expect_error(bad_file(tmp_path, train_set_y=None), "no key 'train_set_y'", key="train_set_y")
    assert isinstance(err, ValueError)


def test_missing_test_split_in_a_single_file(tmp_path):
    path = bad_file(tmp_path, test_set_x=None, test_set_y=None)
    expect_error(path, "no key 'test_set_x'", "test file", key="test_set_x")


def test_count_mismatch_between_x_and_y(tmp_path):
    expect_error(bad_file(tmp_path, train_set_y=np.array([0, 1, 0, 1, 0])), "one label per example", "6",
                 key="train_set_y")


def test_nan_and_inf_in_x(tmp_path):
    x = np.random.RandomState(0).rand(6, 4, 4, 3)
    x[2, 1, 1, 0] = np.nan
    expect_error(bad_file(tmp_path, train_set_x=x), "1 NaN", key="train_set_x")
    x[2, 1, 1, 0] = np.inf
    expect_error(bad_file(tmp_path, train_set_x=x), "infinite", key="train_set_x")


def test_string_dtype(tmp_path):
    expect_error(bad_file(tmp_path, train_set_x=np.array([b"cat"] * 6)), "not numbers", key="train_set_x")
    expect_error(bad_file(tmp_path, test_set_y=np.array([b"a", b"b", b"a", b"b"])), "not numbers", key="test_set_y")


def test_compound_dtype(tmp_path):
    rec = np.zeros(6, dtype=[("a", "f8"), ("b", "i4")])
    expect_error(bad_file(tmp_path, train_set_x=rec), "not numbers", key="train_set_x")


def test_group_instead_of_array(tmp_path):
    path = bad_file(tmp_path, test_set_x=None)
    with h5py.File(path, "a") as f:
        f.create_group("test_set_x")
    expect_error(path, "group", key="test_set_x")


def test_not_hdf5_files(tmp_path):
    png = tmp_path / "picture.h5"
    png.write_bytes(PNG_BYTES)
    expect_error(png, "not an HDF5 file")
    text = tmp_path / "notes.h5"
    text.write_text("train_set_x,train_set_y\n1,2\n")
    expect_error(text, "not an HDF5 file")


def test_truncated_hdf5_is_wrapped(tmp_path):
    good = write_h5(tmp_path / "good.h5", course_arrays(m_train=50, shape=(16, 16, 3)))
    cut = tmp_path / "cut.h5"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    expect_error(cut, "truncated or damaged")


def test_corrupt_compressed_chunk_is_wrapped(tmp_path):
    path = tmp_path / "rot.h5"
    with h5py.File(path, "w") as f:
        for key, value in course_arrays(m_train=20, shape=(16, 16, 3)).items():
            f.create_dataset(key, data=value, compression="gzip" if value.ndim > 1 else None)
        chunk = f["train_set_x"].id.get_chunk_info(0)
    raw = bytearray(path.read_bytes())
    raw[chunk.byte_offset: chunk.byte_offset + chunk.size] = b"\xab" * chunk.size
    path.write_bytes(bytes(raw))
    expect_error(path, "could not be read", key="train_set_x")


def test_missing_path(tmp_path):
    expect_error(tmp_path / "nowhere.h5", "does not exist")


def test_too_large_is_refused_before_reading(tmp_path):
    # Not HDF5 at all: if the size were not checked first, the error would be "not an HDF5 file".
    big = tmp_path / "big.h5"
    big.write_bytes(b"x" * 5000)
    expect_error(big, "more than the limit", "INITLAB_MAX_UPLOAD_MB", max_bytes=4096)
    good = write_h5(tmp_path / "ok.h5", course_arrays())
    assert load_course_h5(good, max_bytes=good.stat().st_size).x_train.shape == (48, 6)


def test_size_limit_from_environment(tmp_path, monkeypatch):
    """The entry point reads $INITLAB_MAX_UPLOAD_MB and passes it on; the reader itself never looks."""
    good = write_h5(tmp_path / "ok.h5", course_arrays())
    monkeypatch.setenv("INITLAB_MAX_UPLOAD_MB", "0.001")  # about 1 kB: smaller than any HDF5 file with data
    assert max_upload_bytes() == int(0.001 * 2**20)
    expect_error(good, "more than the limit", max_bytes=max_upload_bytes())
    assert load_course_h5(good).n_features == 48  # the default limit: the environment is the caller's to read
    monkeypatch.setenv("INITLAB_MAX_UPLOAD_MB", "lots")
    with pytest.raises(DatasetError, match="INITLAB_MAX_UPLOAD_MB"):
        max_upload_bytes()
    assert max_upload_bytes({"INITLAB_MAX_UPLOAD_MB": "1"}) == 2**20


@pytest.mark.parametrize(
    "labels, needle",
    [
        (np.array([0, 1, -1, 0, 1, 0]), "negative"),
        (np.array([0, 1, 5000, 0, 1, 0]), "5000"),
        (np.array([0.0, 1.0, 0.5, 0.0, 1.0, 0.0]), "whole numbers"),
        (np.array([0.0, 1.0, np.nan, 0.0, 1.0, 0.0]), "whole numbers"),
    ],
)
def test_bad_labels(tmp_path, labels, needle):
    expect_error(bad_file(tmp_path, train_set_y=labels), needle, key="train_set_y")


def test_thousands_of_distinct_labels(tmp_path):
    m = 1500
    arrays = course_arrays(m_train=m, shape=(2,))
    arrays["train_set_y"] = np.arange(m)
    arrays.pop("list_classes")
    expect_error(write_h5(tmp_path / "ids.h5", arrays), "1500 distinct", key="train_set_y")


def test_labels_beyond_list_classes(tmp_path):
    expect_error(bad_file(tmp_path, train_set_y=np.array([0, 1, 2, 0, 1, 0])), "up to 2", key="list_classes")


def test_float_labels_that_are_whole_numbers_are_accepted(tmp_path):
    ds = load_course_h5(bad_file(tmp_path, train_set_y=np.array([0.0, 1.0, 1.0, 0.0, 1.0, 0.0])))
    assert ds.y_train.dtype == np.int64 and ds.y_train.tolist() == [[0, 1, 1, 0, 1, 0]]


def test_feature_counts_differ(tmp_path):
    other = np.zeros((4, 5, 5, 3), dtype=np.uint8)
    expect_error(bad_file(tmp_path, test_set_x=other), "(5, 5, 3)", "same features", key="test_set_x")


def test_empty_split(tmp_path):
    path = bad_file(tmp_path, test_set_x=np.zeros((0, 4, 4, 3), np.uint8), test_set_y=np.zeros(0, np.int64))
    expect_error(path, "empty", key="test_set_x")


def test_too_many_samples(tmp_path):
    expect_error(bad_file(tmp_path), "limit of 5", key="train_set_x", max_samples=5)


def test_integer_pixels_beyond_255_need_pixel_max(tmp_path):
    x = np.full((6, 4, 4, 3), 1000, dtype=np.int32)
    expect_error(bad_file(tmp_path, train_set_x=x), "pixel_max", "outside 0..255", key="train_set_x")


def test_shapes_are_checked_before_anything_is_read(tmp_path, monkeypatch):
    # Declared but never written: the file is tiny, reading it would allocate gigabytes. A spy makes any read an
    # immediate failure, so a loader that reads first fails here instead of exhausting memory.
    def no_reading(self, *args, **kwargs):
        raise AssertionError(f"{self.name} was read before its shape was checked")

    monkeypatch.setattr(h5py.Dataset, "__getitem__", no_reading)
    path = tmp_path / "huge.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("train_set_x", shape=(90_000, 64, 64, 3), dtype="u1", chunks=(1, 64, 64, 3))
        f.create_dataset("train_set_y", shape=(90_000,), dtype="i8")
        f.create_dataset("test_set_x", shape=(10, 64, 64, 3), dtype="u1")
        f.create_dataset("test_set_y", shape=(10,), dtype="i8")
    assert path.stat().st_size < 1_000_000
    expect_error(path, "values", key="train_set_x")
    with h5py.File(path, "a") as f:
        del f["train_set_x"]
        f.create_dataset("train_set_x", shape=(10**7, 4), dtype="f8", chunks=(1000, 4))
    expect_error(path, "10,000,000", key="train_set_x")


# ------------------------------------------------------------------------------------------------- uploads


def test_upload_bytes_match_reading_the_file(tmp_path):
    path = write_h5(tmp_path / "up.h5", course_arrays())
    from_file = load_course_h5(path)
    uploaded = load_uploaded_h5(path.read_bytes(), name="mine")
    assert uploaded.name == "mine"
    assert uploaded.fingerprint() == from_file.fingerprint()


def test_upload_as_train_and_test_files(tmp_path):
    arrays = course_arrays()
    buf_train, buf_test = io.BytesIO(), io.BytesIO()
    with h5py.File(buf_train, "w") as f:
        f["train_set_x"], f["train_set_y"] = arrays["train_set_x"], arrays["train_set_y"]
    with h5py.File(buf_test, "w") as f:
        f["test_set_x"], f["test_set_y"] = arrays["test_set_x"], arrays["test_set_y"]
    ds = load_uploaded_h5(buf_train.getvalue(), test_data=buf_test.getvalue())
    assert ds.x_test.shape == (48, 4) and ds.classes == ("0", "1")


def test_upload_rejects_garbage():
    for garbage in (PNG_BYTES, b"hello world\n", b""):
        with pytest.raises(DatasetError) as info:
            load_uploaded_h5(garbage, name="thing.h5")
        assert "thing.h5" in str(info.value)
    with pytest.raises(DatasetError, match="limit"):
        load_uploaded_h5(b"\x00" * 2048, max_bytes=1024)


# ------------------------------------------------------------------------------------------ shipped datasets


def test_shapes64_matches_the_course_shapes_and_balance():
    ds = load_dataset("shapes64")
    assert ds.x_train.shape == (12288, 209) and ds.x_test.shape == (12288, 50)
    assert int(ds.y_train.sum()) == 72 and int(ds.y_test.sum()) == 33
    assert ds.image_shape == (64, 64, 3) and ds.output_size == 1
    assert 0.0 <= ds.x_train.min() and ds.x_train.max() <= 1.0
    assert "synthetic" in ds.description.lower()


def test_shapes64_file_is_small_and_in_course_layout():
    path = REPO / "data" / "shapes64.h5"
    assert path.stat().st_size < 4_000_000
    with h5py.File(path) as f:
        assert f["train_set_x"].shape == (209, 64, 64, 3) and f["train_set_x"].dtype == np.uint8
        assert f["test_set_x"].shape == (50, 64, 64, 3)
        assert f["train_set_x"].compression == "gzip"


@pytest.fixture
def data_scripts(monkeypatch):
    """Import the generator scripts in data/ as modules (they are scripts, not a package)."""
    monkeypatch.setattr(sys, "dont_write_bytecode", True)  # leave no __pycache__ in data/
    monkeypatch.syspath_prepend(str(REPO / "data"))
    return importlib.import_module


def test_shapes64_file_is_what_the_script_makes(data_scripts):
    made = data_scripts("make_shapes64").make_all()
    with h5py.File(REPO / "data" / "shapes64.h5") as f:
        for key in ("train_set_y", "test_set_y"):
            np.testing.assert_array_equal(f[key][()], made[key])
        for key in ("train_set_x", "test_set_x"):
            diff = np.abs(f[key][()].astype(int) - made[key].astype(int))
            # libm may round a rare pixel differently on another machine; anything more is a stale file
            assert diff.max() <= 1 and np.mean(diff > 0) < 1e-3, f"data/shapes64.h5 is stale: rerun the script"


def test_shapes64_is_learnable_but_not_trivial():
    """Measured with this file: nearest class mean 0.66 train / 0.64 test; logistic regression 0.93 / 0.72."""
    ds = load_dataset("shapes64")
    X, Y, Xt, Yt = ds.x_train, ds.y_train[0], ds.x_test, ds.y_test[0]
    mean0, mean1 = X[:, Y == 0].mean(axis=1), X[:, Y == 1].mean(axis=1)
    assert np.linalg.norm(mean1 - mean0) > 1.0  # the classes differ on average ...

    def ncm(A):
        d0 = np.sum((A - mean0[:, None]) ** 2, axis=0)
        d1 = np.sum((A - mean1[:, None]) ** 2, axis=0)
        return (d1 < d0).astype(int)

    ncm_test = np.mean(ncm(Xt) == Yt)
    assert 0.5 < ncm_test < 0.85  # ... but a template match on raw pixels is far from solving it

    w, b = np.zeros(X.shape[0]), 0.0  # the course's logistic regression: zeros, lr 0.005, 2000 steps
    for _ in range(2000):
        a = 1 / (1 + np.exp(-(w @ X + b)))
        w -= 0.005 * (X @ (a - Y)) / X.shape[1]
        b -= 0.005 * np.mean(a - Y)
    test_acc = np.mean(((w @ Xt + b) > 0) == Yt)
    assert 0.55 < test_acc < 0.9


def test_digits():
    ds = load_dataset("digits")
    assert ds.x_train.shape[1] + ds.x_test.shape[1] == 1797
    assert ds.x_train.shape == (64, 1437) and ds.image_shape == (8, 8)
    assert ds.n_classes == 10 and ds.output_size == 10
    assert ds.x_train.max() == 1.0 and ds.x_train.min() == 0.0  # 16 / 16 and 0 / 16
    counts = np.bincount(ds.y_test[0], minlength=10)
    assert counts.min() >= 30  # stratified: every digit is in the test split
    with h5py.File(REPO / "data" / "digits.h5") as f:
        raw = f["train_set_x"][()]
        assert raw.dtype == np.uint8 and raw.max() == 16
        np.testing.assert_array_equal(ds.x_train, raw.reshape(len(raw), -1).T / 16.0)


def test_digits_binary():
    full = load_dataset("digits")
    three = load_dataset("digits:3")
    assert three.classes == ("not 3", "3") and three.output_size == 1
    np.testing.assert_array_equal(three.y_train, (full.y_train == 3).astype(np.int64))
    np.testing.assert_array_equal(three.x_test, full.x_test)
    for bad in ("digits:10", "digits:x", "digits:"):
        with pytest.raises(DatasetError):
            load_dataset(bad)


def test_digits_split_is_stratified_and_disjoint(data_scripts):
    split = data_scripts("make_digits").stratified_split
    y = np.repeat(np.arange(10), [178, 182, 177, 183, 181, 182, 181, 179, 174, 180])
    train, test = split(y, 360, 1797)
    assert len(test) == 360 and len(train) == 1437
    assert len(np.intersect1d(train, test)) == 0 and len(np.union1d(train, test)) == 1797
    share = np.bincount(y[test], minlength=10) / np.bincount(y, minlength=10)
    assert np.all(np.abs(share - 0.2) < 0.01)


# ------------------------------------------------------------------------------------------- the course data


@needs_course
def test_course_files_preprocessed_exactly_like_the_course(monkeypatch):
    ds = load_dataset("catvnoncat", COURSE_DIR)
    with h5py.File(COURSE_TRAIN) as f:
        raw_x, raw_y = np.array(f["train_set_x"][:]), np.array(f["train_set_y"][:])
    with h5py.File(COURSE_TEST) as f:
        raw_xt, raw_yt = np.array(f["test_set_x"][:]), np.array(f["test_set_y"][:])
    assert ds.x_train.shape == (12288, 209) and int(ds.y_train.sum()) == 72
    assert ds.x_test.shape == (12288, 50) and int(ds.y_test.sum()) == 33
    assert ds.x_train.max() <= 1.0
    np.testing.assert_array_equal(ds.x_train, raw_x.reshape(raw_x.shape[0], -1).T / 255.)
    np.testing.assert_array_equal(ds.x_test, raw_xt.reshape(raw_xt.shape[0], -1).T / 255.)
    np.testing.assert_array_equal(ds.y_train, raw_y.reshape((1, 209)))
    np.testing.assert_array_equal(ds.y_test, raw_yt.reshape((1, 50)))
    assert ds.classes == ("non-cat", "cat") and ds.image_shape == (64, 64, 3)


@needs_course
def test_course_files_as_a_pair_and_as_uploads():
    by_name = load_dataset("catvnoncat", COURSE_DIR)
    by_path = load_course_h5(COURSE_TRAIN, COURSE_TEST)
    uploaded = load_uploaded_h5(COURSE_TRAIN.read_bytes(), test_data=COURSE_TEST.read_bytes())
    assert by_path.name == "catvnoncat"
    assert by_name.fingerprint() == by_path.fingerprint() == uploaded.fingerprint()


def test_catvnoncat_missing_says_where_and_how(tmp_path):
    with pytest.raises(DatasetError) as info:
        load_dataset("catvnoncat", tmp_path)
    message = str(info.value)
    for needle in (str(tmp_path), "train_catvnoncat.h5", "--data-dir", "INITLAB_DATA_DIR", "upload"):
        assert needle in message
    assert "catvnoncat" not in D.dataset_names(tmp_path)


def test_shipped_data_still_loads_with_another_data_dir(tmp_path):
    assert load_dataset("shapes64", tmp_path).x_train.shape == (12288, 209)


@needs_course
def test_dataset_names_are_all_loadable():
    names = D.dataset_names(COURSE_DIR)
    assert names[0] == "catvnoncat" and {"shapes64", "digits", "digits:9", "circles", "gaussian:500"} <= set(names)
    for name in names:  # each name reaches its own loader: the set it names, with examples in both splits
        ds = load_dataset(name, COURSE_DIR)
        assert ds.name == name and ds.x_train.shape[1] > 0 and ds.x_test.shape[1] > 0


def test_default_data_dir(monkeypatch, tmp_path):
    assert D.default_data_dir() == REPO / "data"
    monkeypatch.setenv("INITLAB_DATA_DIR", str(tmp_path))
    assert D.default_data_dir() == tmp_path


def test_the_loaders_never_read_the_data_folder_from_the_environment(monkeypatch, tmp_path):
    """$INITLAB_DATA_DIR is the entry points' to read (default_data_dir); a loader given no folder uses data/."""
    monkeypatch.setenv("INITLAB_DATA_DIR", str(tmp_path))  # an empty folder: no shapes64 there, nor in a fallback
    assert "shapes64" in D.dataset_names() and D.load_dataset("shapes64").name == "shapes64"
    (tmp_path / "shapes64.h5").write_bytes(b"not HDF5")  # were the environment read, this file would be opened
    assert D.load_dataset("shapes64").n_features == 64 * 64 * 3


# ---------------------------------------------------------------------------------------------- generators


def test_circles_geometry():
    ds = load_dataset("circles")
    assert ds.x_train.shape == (2, 300) and ds.x_test.shape == (2, 100)
    radius = np.linalg.norm(ds.x_train, axis=0)
    assert abs(radius[ds.y_train[0] == 0].mean() - 1.0) < 0.02  # outer circle
    assert abs(radius[ds.y_train[0] == 1].mean() - 0.8) < 0.02  # inner circle, factor 0.8
    assert ds.y_train.sum() == 150 and ds.y_test.sum() == 50


def test_circles_are_the_course_data_bit_for_bit():
    datasets = pytest.importorskip("sklearn.datasets")
    state = np.random.get_state()
    try:
        np.random.seed(1)
        train_X, train_Y = datasets.make_circles(n_samples=300, noise=.05)
        np.random.seed(2)
        test_X, test_Y = datasets.make_circles(n_samples=100, noise=.05)
    finally:
        np.random.set_state(state)
    ds = load_dataset("circles")
    np.testing.assert_array_equal(ds.x_train, train_X.T)
    np.testing.assert_array_equal(ds.y_train, train_Y.reshape((1, train_Y.shape[0])))
    np.testing.assert_array_equal(ds.x_test, test_X.T)
    np.testing.assert_array_equal(ds.y_test, test_Y.reshape((1, test_Y.shape[0])))


def test_generators_leave_global_random_state_alone():
    np.random.seed(123)
    before = np.random.rand()
    np.random.seed(123)
    for name in D.TWO_D_NAMES + ("gaussian:7",):
        load_dataset(name)
    assert np.random.rand() == before


GENERATED = D.TWO_D_NAMES + ("gaussian:3", "gaussian:500")


@pytest.mark.parametrize("name", GENERATED)
def test_generators_are_deterministic(name):
    first = load_dataset(name)
    D._load_cached.cache_clear()
    second = load_dataset(name)
    assert first is not second
    for a, b in ((first.x_train, second.x_train), (first.y_test, second.y_test)):
        np.testing.assert_array_equal(a, b)
    assert first.fingerprint() == second.fingerprint()
    assert first.x_train.dtype == np.float64 and first.y_train.dtype == np.int64
    assert set(np.unique(first.y_train)) == {0, 1} and set(np.unique(first.y_test)) == {0, 1}
    assert "synthetic" in first.description.lower()


def test_different_names_give_different_data():
    names = list(GENERATED) + ["shapes64", "digits", "digits:0", "digits:1"]
    prints = [load_dataset(n).fingerprint() for n in names]
    assert len(set(prints)) == len(names)


def test_gaussian():
    ds = load_dataset("gaussian:500")
    assert ds.x_train.shape == (500, 1000) and ds.x_test.shape == (500, 200)
    assert abs(ds.x_train.mean()) < 0.01 and abs(ds.x_train.std() - 1) < 0.01
    assert "mean nothing" in ds.description
    assert load_dataset("gaussian:1").x_train.shape == (1, 1000)
    for bad in ("gaussian:0", "gaussian:4097", "gaussian:abc", "gaussian:", "gaussian:05"):
        with pytest.raises(DatasetError, match="gaussian:D"):
            load_dataset(bad)


def test_unknown_name():
    with pytest.raises(DatasetError, match="shapes64"):
        load_dataset("cats")


# ------------------------------------------------------------------------------- fingerprint, standardize


def _toy(**changes) -> Dataset:
    rs = np.random.RandomState(0)
    fields = dict(name="toy", x_train=rs.rand(3, 5), y_train=np.array([[0, 1, 0, 1, 1]]),
                  x_test=rs.rand(3, 2), y_test=np.array([[1, 0]]), classes=("a", "b"))
    fields.update(changes)
    return Dataset(**fields)


def test_fingerprint_changes_with_one_value_and_not_with_the_name():
    base = _toy()
    x = np.array(base.x_train)
    x[1, 3] += 1e-12
    assert _toy(x_train=x).fingerprint() != base.fingerprint()
    y = np.array(base.y_test)
    y[0, 0] = 0
    assert _toy(y_test=y).fingerprint() != base.fingerprint()
    assert _toy(classes=("a", "c")).fingerprint() != base.fingerprint()
    assert _toy(name="other", description="x").fingerprint() == base.fingerprint()


def test_dataset_rejects_inconsistent_arrays():
    with pytest.raises(DatasetError):
        _toy(y_train=np.array([[0, 1, 0, 1]]))  # 4 labels for 5 examples
    with pytest.raises(DatasetError):
        _toy(x_test=np.zeros((4, 2)))  # 4 features, train has 3
    with pytest.raises(DatasetError):
        _toy(y_test=np.array([[0, 2]]))  # label 2 with two classes


def test_standardize_uses_train_statistics():
    ds = load_dataset("digits")
    st = load_dataset("digits", standardize=True)
    constant = np.ptp(ds.x_train, axis=1) == 0
    assert constant.any()  # digits have always-blank corner pixels
    varying = ~constant
    np.testing.assert_allclose(st.x_train[varying].mean(axis=1), 0, atol=1e-12)
    np.testing.assert_allclose(st.x_train[varying].std(axis=1), 1, atol=1e-12)
    assert np.all(st.x_train[constant] == 0) and np.all(st.x_test[constant] == 0)
    mu, sd = ds.x_train[varying].mean(axis=1), ds.x_train[varying].std(axis=1)
    np.testing.assert_allclose(st.x_test[varying], (ds.x_test[varying] - mu[:, None]) / sd[:, None], atol=1e-12)
    assert not np.allclose(st.x_test[varying].mean(axis=1), 0, atol=1e-3)  # test is not re-centred on itself
    np.testing.assert_array_equal(st.y_train, ds.y_train)


def test_images_are_not_standardized_by_default():
    ds = load_dataset("shapes64")
    assert ds.x_train.min() >= 0 and abs(ds.x_train.mean() - 0.5) < 0.2


# ------------------------------------------------------------------------------------------------ hygiene


def test_core_data_imports_no_dashboard_libraries():
    imported = set()
    for node in (n for path in (REPO / "core" / "data").glob("*.py") for n in ast.walk(ast.parse(path.read_text()))):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & {"streamlit", "plotly", "sklearn", "matplotlib"}
    assert imported <= {"__future__", "hashlib", "io", "math", "os", "dataclasses", "functools", "pathlib", "h5py",
                        "numpy", "threading", "typing", "zipfile", "zlib", "untrusted", "sandbox", "dataset",
                        "course_h5", "toy", "registry", "upload"}


def test_a_class_asking_at_once_shares_one_load(monkeypatch):
    """Thirty sessions asking for the same dataset at the same moment get one object, read once (lru_cache alone
    lets every caller miss while the first is still reading); the standardised variant is cached as well."""
    import threading
    import time

    reads, real = [], D.LOADERS["moons"]

    def slow_read(key, folder):
        reads.append(1)
        time.sleep(0.05)  # the others arrive while this one reads
        return real.load(key, folder)

    monkeypatch.setitem(D.LOADERS, "moons", dataclasses.replace(real, load=slow_read))
    got, start = [], threading.Barrier(30)

    def session():
        start.wait()
        got.append(load_dataset("moons"))

    threads = [threading.Thread(target=session) for _ in range(30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(reads) == 1 and len({id(d) for d in got}) == 1
    assert load_dataset("moons", standardize=True) is load_dataset("moons", standardize=True)
    assert len(reads) == 1


def test_the_cat_datasets_description_names_no_server_folder(cat_data):
    """The description is shown in the page's header: the operator's data folder is not the students' business."""
    assert "cat / non-cat" in cat_data.description
    assert str(COURSE_DIR) not in cat_data.description and str(COURSE_DIR.parent) not in cat_data.description
