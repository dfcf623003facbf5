"""Progress for long runs: a tqdm bar on a terminal, one plain line a minute in a log."""

import io

import numpy as np

from grokjax.engine import progress as prog


class Clock:
  def __init__(self):
    self.t = 100.0

  def __call__(self):
    return self.t


def test_a_log_gets_a_line_a_minute_with_the_rate_after_the_first_chunk_and_the_time_left():
  out, clock = io.StringIO(), Clock()
  bar = prog.LineProgress(10_000, "clamp_p59", initial=2_000, stream=out, clock=clock)
  clock.t += 30
  bar.update(3_000)
  assert out.getvalue() == ""  # under a minute: nothing yet
  clock.t += 30
  bar.set_postfix(live=8)
  bar.update(3_000)  # 3,000 in the 30 s after the first chunk: 100 run-steps/s, 2,000 left
  line = out.getvalue()
  assert line == ("  clamp_p59: 8,000 of 10,000 run-steps (80 %), 100 run-steps/s, "
                  "about 20 s left, live 8\n")
  bar.total -= 1_000  # runs retired early: less left
  clock.t += 10
  bar.update(500)
  assert out.getvalue() == line  # 10 s after the last line: still one line
  clock.t += 5
  bar.close()
  assert out.getvalue().splitlines()[-1] == (
      "  clamp_p59: done, 8,500 of 9,000 run-steps in 1 min 15 s (78 run-steps/s)")
  assert "\r" not in out.getvalue()


def test_a_compile_in_the_first_chunk_does_not_count_in_the_rate():
  out, clock = io.StringIO(), Clock()
  bar = prog.LineProgress(5_000, "p59", stream=out, clock=clock)
  clock.t += 90  # compile + one chunk: the first line says what it can, the rate since the start
  bar.update(1_000)
  assert out.getvalue() == "  p59: 1,000 of 5,000 run-steps (20 %), 11 run-steps/s, about 6 min 00 s left\n"
  clock.t += 2
  bar.update(1_000)
  clock.t += 2
  bar.close()  # 1,000 run-steps in the 4 s since the first chunk ended
  assert out.getvalue().splitlines()[-1] == "  p59: done, 2,000 of 5,000 run-steps in 1 min 34 s (250 run-steps/s)"


def test_durations_read_as_hours_minutes_and_seconds():
  assert [prog._duration(s) for s in (7, 95, 3725)] == ["7 s", "1 min 35 s", "1 h 02 min"]


def test_a_terminal_gets_a_bar_and_a_file_gets_lines(monkeypatch):
  class Tty(io.StringIO):
    def isatty(self):
      return True
  monkeypatch.setattr("sys.stderr", io.StringIO())
  assert isinstance(prog.progress(10, "x"), prog.LineProgress)
  monkeypatch.setattr("sys.stderr", Tty())
  bar = prog.progress(10, "x", initial=4)
  assert not isinstance(bar, prog.LineProgress) and bar.n == 4 and bar.total == 10
  bar.close()


def test_training_into_a_log_writes_plain_lines(capsys):
  from grokjax.engine.optim import NEVER
  from grokjax.engine.spec import Runs, Task
  from grokjax.engine.train import train
  res = train(Task(p=11, d=8, hidden=16, eval_every=5), Runs([0, 1], 1e-2, 1.0, np.nan, NEVER, 40),
              chunk_steps=20, retire_margin=None, progress=True, desc="tiny")
  err = capsys.readouterr().err
  assert res.curves["norm"].shape[0] == 2
  assert "\r" not in err and "  tiny: done, 80 of 80 run-steps in" in err
