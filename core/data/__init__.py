"""Datasets for Init Lab: the course's cat images, shipped stand-ins, toy 2-D sets, and validated uploads.

Every dataset comes out in the course's layout: inputs X of shape (n_features, m) float64, one example per column,
and labels Y of shape (1, m) int64 holding class indices. Images are flattened exactly as the course does it,
``x.reshape(m, -1).T / 255.``; a file can say that its pixels go up to something other than 255 with an HDF5
attribute ``pixel_max`` (the shipped digits use 16).

Names that ``load_dataset`` understands (``registry.LOADERS``):

* ``catvnoncat`` -- the course's 209 + 50 cat / non-cat photos, read from a folder the user names (never shipped).
* ``shapes64`` -- a synthetic stand-in with the same shapes and class balance (``data/make_shapes64.py``).
* ``digits``, ``digits:K`` -- UCI handwritten digits, 8 x 8, ten classes or "is it a K" (``data/make_digits.py``).
* ``circles``, ``moons``, ``spiral``, ``xor``, ``blobs`` -- seeded 2-D toy sets (``toy``); ``circles`` is
  bit-for-bit the course's "Initialization" exercise data.
* ``gaussian:D`` -- standard-normal inputs of dimension D with meaningless labels, for forward-only probes.

Modules: ``dataset`` (the type), ``registry`` (names → loaders, data folder, cache), ``course_h5`` (the validating
HDF5 reader), ``upload`` (an upload of one or two files or a zip), ``toy`` (the generators).
"""

from .course_h5 import load_course_h5, load_uploaded_h5, max_upload_bytes
from .dataset import Dataset, DatasetError, standardized
from .registry import dataset_names, default_data_dir, load_dataset
from .upload import UploadedFile, load_uploaded_files

__all__ = ["Dataset", "DatasetError", "UploadedFile", "dataset_names", "default_data_dir", "load_course_h5",
           "load_dataset", "load_uploaded_files", "load_uploaded_h5", "max_upload_bytes", "standardized"]
