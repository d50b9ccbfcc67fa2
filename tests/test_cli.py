"""The flowdist command: check-transform verdicts and one-line errors for user mistakes."""

from __future__ import annotations

import io

import pytest

from flowdist.cli import check_transform_command, main

USER_MODULE = """
from torch.distributions import AffineTransform
from flowdist.transforms import RadialTransform

def good():
    return RadialTransform(3)

class WrongLogDet(AffineTransform):
    def log_abs_det_jacobian(self, x, y):
        return super().log_abs_det_jacobian(x, y) + 0.1

def bad():
    return WrongLogDet(0.0, 2.0, event_dim=1)

not_a_transform = 3
"""


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "user_transforms.py").write_text(USER_MODULE)
    monkeypatch.chdir(tmp_path)
    return "user_transforms"


def test_check_transform_passes_a_correct_transform(user_module):
    out = io.StringIO()
    assert check_transform_command(f"{user_module}:good", randomize_scale=1.0, out=out)
    assert "verdict for user_transforms:good: all checks hold" in out.getvalue()


def test_check_transform_reports_a_wrong_log_det(user_module, capsys):
    assert main(["check-transform", f"{user_module}:bad", "--event-shape", "3"]) == 1
    text = capsys.readouterr().out
    assert "FAIL  log-det vs autograd Jacobian [torch.float64]" in text
    assert "ok    inverse [torch.float64]" in text
    assert "2 of 12 checks fail" in text


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["check-transform", "nomodule_xyz:f"], "cannot import module 'nomodule_xyz'"),
        (["check-transform", "user_transforms"], "must look like module:factory"),
        (["check-transform", "user_transforms:missing"], "has no attribute 'missing'"),
        (["check-transform", "user_transforms:not_a_transform"], "must be (or return)"),
        (["check-transform", "user_transforms:bad"], "pass --event-shape"),
        (["check-transform", "user_transforms:AffineTransform"], "calling user_transforms"),
        (["demo", "--device", "nonsense"], "--device"),
        (
            ["check-transform", "user_transforms:bad", "--event-shape", "3", "--batch", "0"],
            "--batch must be an integer >= 1, got 0",
        ),
        (
            ["check-transform", "user_transforms:bad", "--event-shape", "-1"],
            "--event-shape must be an integer >= 1, got -1",
        ),
        (
            ["check-transform", "user_transforms:bad", "--event-shape", "3", "--randomize", "nan"],
            "--randomize",
        ),
    ],
)
def test_user_mistakes_are_one_line_errors(user_module, capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
