"""Fuzzing the upload path (core.data.load_uploaded_h5): whatever bytes a student uploads, the result is a valid
Dataset or a DatasetError with a message -- never another exception, which the dashboard would show as a crash."""

from __future__ import annotations

import io

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from core.data import DatasetError, load_uploaded_h5

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
COURSE_KEYS = ("train_set_x", "train_set_y", "test_set_x", "test_set_y", "list_classes")
FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])

dtypes = st.sampled_from([np.uint8, np.int8, np.int64, np.uint64, np.float16, np.float32, np.float64, np.bool_,
                          np.complex64, "S6"])
shapes = hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5)
arrays = st.builds(lambda dtype, shape: (dtype, shape), dtypes, shapes).flatmap(
    lambda ds: hnp.arrays(ds[0], ds[1], elements=None if ds[0] != np.float64 else
                          st.floats(allow_nan=True, allow_infinity=True, width=64)))
# Values HDF5 can store as attributes (integers within int64/uint64, strings without NUL): anything else fails in
# h5py while the test builds its file, before the loader runs.
no_nul = st.characters(blacklist_characters="\x00")
attr_values = st.one_of(st.integers(-2**63, 2**64 - 1), st.floats(), st.text(no_nul, max_size=5),
                        st.binary(max_size=5).map(lambda b: b.replace(b"\x00", b"\x01")),
                        hnp.arrays(np.float64, hnp.array_shapes(max_dims=2, max_side=3)))


def check(result_of):
    """Run the loader; a Dataset must be coherent, an error must be a DatasetError that says something."""
    try:
        dataset = result_of()
    except DatasetError as e:
        assert str(e).strip()
        return None
    assert np.isfinite(dataset.x_train).all() and np.isfinite(dataset.x_test).all()
    for x, y in ((dataset.x_train, dataset.y_train), (dataset.x_test, dataset.y_test)):
        assert y.shape == (1, x.shape[1]) and x.shape[0] == dataset.n_features
        assert 0 <= y.min() and y.max() < dataset.n_classes
    return dataset


def h5_bytes(build) -> bytes:
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        build(f)
    return buffer.getvalue()


def valid_file(m_train: int = 6, m_test: int = 3) -> bytes:
    rs = np.random.RandomState(0)

    def build(f):
        for split, m in (("train", m_train), ("test", m_test)):
            f[f"{split}_set_x"] = rs.randint(0, 256, size=(m, 4, 4, 3)).astype(np.uint8)
            f[f"{split}_set_y"] = (np.arange(m) % 2).astype(np.int64)
        f["list_classes"] = np.array([b"non-cat", b"cat"])
    return h5_bytes(build)


def test_the_unmodified_file_loads():  # the baseline the mutations below start from
    dataset = check(lambda: load_uploaded_h5(valid_file()))
    assert dataset is not None and dataset.x_train.shape == (48, 6) and dataset.classes == ("non-cat", "cat")


@FUZZ
@given(st.binary(max_size=4096))
def test_random_bytes(data):
    check(lambda: load_uploaded_h5(data))


@FUZZ
@given(st.binary(max_size=4096))
def test_random_bytes_after_an_hdf5_signature(tail):
    check(lambda: load_uploaded_h5(HDF5_SIGNATURE + tail))


@FUZZ
@given(st.dictionaries(st.sampled_from(COURSE_KEYS + ("extra", "train_set_x/inner")), arrays, max_size=6),
       st.dictionaries(st.sampled_from(COURSE_KEYS), attr_values, max_size=3),
       st.one_of(st.none(), attr_values))
def test_random_small_h5_files(datasets, attributes, file_pixel_max):
    def build(f):
        for key, value in datasets.items():
            if not any(k in f for k in (key, key.split("/")[0])):  # "x" and "x/inner": the first one wins
                f.create_dataset(key, data=value)
        for key, value in attributes.items():
            if key in f:
                f[key].attrs["pixel_max"] = value
        if file_pixel_max is not None:
            f.attrs["pixel_max"] = file_pixel_max
    check(lambda: load_uploaded_h5(h5_bytes(build)))


@FUZZ
@given(st.data())
def test_a_valid_file_with_bytes_flipped_or_cut(data):
    blob = bytearray(valid_file())
    for _ in range(data.draw(st.integers(1, 8))):
        i = data.draw(st.integers(0, len(blob) - 1))
        blob[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(1, len(blob)))
    check(lambda: load_uploaded_h5(bytes(blob[:cut])))


@pytest.mark.parametrize("scale", [10])
def test_an_upload_ten_times_the_cap_is_refused_before_reading(scale):
    blob = valid_file()
    with pytest.raises(DatasetError, match="limit"):
        load_uploaded_h5(blob * scale, max_bytes=len(blob) * scale // 10)
