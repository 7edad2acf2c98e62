"""`train` without a terminal: a line every few batches with the rate and the time left (model/training/progress.py)."""

from __future__ import annotations

from model.training.progress import UNKNOWN_EVERY, batch_line, clock, every_for


def test_lines_come_about_ten_times_an_epoch() -> None:
    assert every_for(1000) == 100 and every_for(95) == 10 and every_for(3) == 1
    assert every_for(None) == UNKNOWN_EVERY


def test_the_line_gives_rate_and_eta() -> None:
    # 100 of 400 batches at 2 batches/s: 300 left -> 150 s.
    assert batch_line(3, 100, 400, 2.0, 0.123456) == "epoch 3: batch 100/400, loss 0.1235, 2.00 batches/s, ETA 2:30"
    assert batch_line(1, 50, None, 0.5, None) == "epoch 1: batch 50, 0.50 batches/s"
    assert clock(3725) == "1:02:05" and clock(59.6) == "1:00"


def test_the_callback_echoes_every_n_batches_timed_after_the_first_but_not_at_the_epochs_end() -> None:
    from model.training.progress import BatchLines

    now = [0.0]
    lines: list[str] = []
    callback = BatchLines(lines.append, clock_=lambda: now[0])
    callback.set_params({"steps": 20, "epochs": 5})
    callback.on_epoch_begin(1)
    for batch in range(20):
        now[0] += 90.0 if batch == 0 else 0.5  # the first batch builds the graph
        callback.on_train_batch_end(batch, {"loss": 1.0 / (batch + 1)})  # batch 17 (the 18th): 1/18
    # every_for(20) = 2: batches 2, 4, ..., 18 (20 ends the epoch: Keras prints that line itself);
    # 0.5 s a batch after the first: 2 batches/s whatever the first one took.
    assert len(lines) == 9
    assert lines[0] == "epoch 2: batch 2/20, loss 0.5000, 2.00 batches/s, ETA 0:09"
    assert lines[-1] == "epoch 2: batch 18/20, loss 0.0556, 2.00 batches/s, ETA 0:01"
