"""One family of user errors (flowmaps.errors): the CLI prints those in one line and lets
anything else, a bug, keep its traceback."""
import pytest

import flowmaps.cli as cli
from flowmaps import errors
from flowmaps.cli import main


@pytest.mark.parametrize("name, builtin", [
    ("ConfigError", ValueError), ("DataError", ValueError), ("InputError", ValueError), ("UsageError", Exception),
    ("RunError", FileNotFoundError), ("MissingDataError", FileNotFoundError), ("MetricUnavailable", RuntimeError),
    ("NotInvertibleError", ValueError), ("InterpolantError", ValueError), ("TrainingDiverged", RuntimeError),
])
def test_each_user_error_is_a_flowmaps_error_and_keeps_its_builtin_base(name, builtin):
    cls = getattr(errors, name)
    assert issubclass(cls, errors.FlowmapsError) and issubclass(cls, builtin)


def test_the_old_import_places_name_the_same_classes():
    from flowmaps.config import ConfigError
    from flowmaps.data.images import MissingDataError
    from flowmaps.encode import NotInvertibleError
    from flowmaps.inputs import InputError
    from flowmaps.metrics import MetricUnavailable
    from flowmaps.run import RunError
    from flowmaps.train.trainer import TrainingDiverged

    assert (ConfigError, MissingDataError, NotInvertibleError, InputError, MetricUnavailable, RunError, TrainingDiverged) \
        == (errors.ConfigError, errors.MissingDataError, errors.NotInvertibleError, errors.InputError,
            errors.MetricUnavailable, errors.RunError, errors.TrainingDiverged)


def test_a_bug_keeps_its_traceback(monkeypatch):
    def broken(args):
        raise ValueError("an internal bug")

    monkeypatch.setattr(cli, "cmd_info", broken)
    with pytest.raises(ValueError, match="an internal bug"):
        main(["info"])


def test_a_bad_data_file_is_one_line(tmp_path, capsys):
    (tmp_path / "t.csv").write_text("a,b\n1,2\n3\n")
    assert main(["train", "--data", str(tmp_path / "t.csv"), "--minutes", "0.05", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("flowmaps: error: data.path") and "cells" in err and len(err.splitlines()) == 1
