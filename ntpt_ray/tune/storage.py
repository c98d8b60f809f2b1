"""Optuna storages from one URL: an SQLAlchemy database, or ``journal:PATH`` for a journal file."""

from __future__ import annotations

from pathlib import Path

import optuna
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend


class TuneError(RuntimeError):
    """A tuning run that cannot start: bad storage, unknown study, nothing to report."""


def open_storage(url: str) -> BaseStorage:
    """The Optuna storage at ``url``: ``sqlite:///runs/tune.db`` (the default), any other
    SQLAlchemy URL (``postgresql://user@host/db``), or ``journal:PATH``, a journal file that
    several processes may share. A storage that cannot be opened raises :class:`TuneError`."""
    try:
        path = _local_file(url)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        if url.startswith("journal:"):
            return JournalStorage(JournalFileBackend(str(path)))
        if "://" not in url:
            raise TuneError(f"storage '{url}': expected an SQLAlchemy URL (sqlite:///runs/tune.db, "
                            "postgresql://user@host/db) or journal:PATH")
        engine = {} if url.startswith("sqlite:///") else {
            "connect_args": {"connect_timeout": 10}}  # fail fast on a dead host
        return RDBStorage(url, engine_kwargs=engine)
    except TuneError:
        raise
    except Exception as exc:  # SQLAlchemy and DB drivers raise many kinds; all mean "cannot open"
        reason = next((line.strip() for line in str(exc).splitlines() if line.strip()), repr(exc))
        raise TuneError(f"storage '{url}': cannot open it: {type(exc).__name__}: {reason}") from None


def load_study(storage: BaseStorage, name: str, url: str) -> optuna.Study:
    """An existing study, or :class:`TuneError` listing the studies the storage has."""
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
        raise TuneError(f"storage '{url}' has no study '{name}' (it has: "
                        f"{', '.join(names) or 'none'}); run `ntpt tune SPEC` first") from None


def load_existing_study(url: str, name: str) -> optuna.Study:
    """Study ``name`` in the storage at ``url``, creating nothing: a storage file that does not
    exist yet is a :class:`TuneError`, not a new empty database."""
    path = _local_file(url)
    if path is not None and not path.is_file():
        raise TuneError(f"storage '{url}' has no study '{name}' (no file {path}); "
                        "run `ntpt tune SPEC` first")
    return load_study(open_storage(url), name, url)


def _local_file(url: str) -> Path | None:
    """The file behind a ``journal:PATH`` or ``sqlite:///PATH`` storage; None for others."""
    if url.startswith("journal:"):
        return Path(url.removeprefix("journal:"))
    path = url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else ""
    return Path(path) if path and path != ":memory:" else None
