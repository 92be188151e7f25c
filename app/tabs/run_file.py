"""The Run file tab: download the watched run's HDF5 file, or upload a recorded one to replay in the Training tab."""

from __future__ import annotations

import streamlit as st

from app.markup import code, with_file_names_as_code
from app.tabs.training import watched_run
from app.ui import WHY_INIT, SessionState, state, why
from core.record import RunFileError
from core.run_reader import read_uploaded_run

def take_run_upload() -> None:
    upload = state.run_upload
    if upload is None:
        return
    try:  # one replay per session: a new upload replaces the old one
        state.replay = read_uploaded_run(upload.getvalue(), upload.name)
        state.replay_name, state.run_upload_error = upload.name, None
    except RunFileError as e:
        state.replay, state.run_upload_error = None, with_file_names_as_code(e, [upload.name])


def render() -> None:
    why("A run file is an HDF5 file holding the config, the initial and final weights and every snapshot's "
        "statistics: share it, and anyone can replay exactly what you saw." + "\n\n" + WHY_INIT)
    run, _ = watched_run()
    st.subheader("Download the current run")
    if run is None:
        st.caption("Train a run in the Training tab first.")
    elif not run.done or not run.path.is_file():
        st.caption("The file is ready when the run ends (or is stopped).")
    else:
        last = run.snapshots[-1].step if run.snapshots else 0
        st.download_button("Download run (.h5)", run.path.read_bytes(), file_name=f"initlab-{run.key[:8]}.h5",
                           mime="application/x-hdf5", key="download_run")
        st.caption(f"{run.network} · {run.config.init} · {run.status} at step {last:,} of {run.config.iterations:,} · "
                   f"{len(run.snapshots)} snapshots · {run.path.stat().st_size / 1e6:.1f} MB. Replay it here, or "
                   "read it with `python -m core show FILE` or h5py.")
    st.subheader("Replay a recorded run")
    st.file_uploader("Recorded run (.h5)", type=["h5"], key=SessionState.run_upload.key, on_change=take_run_upload)
    if state.run_upload_error:
        st.error(state.run_upload_error)  # Markdown already: escaped, file names as code
    elif state.replay is not None:
        st.success(f"Loaded {code(state.replay_name)}: {len(state.replay.snapshots)} snapshots. See the Training "
                   "tab, which shows the run's own settings and can load them into the sidebar.")
