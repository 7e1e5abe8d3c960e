"""The on-disk spool: bounded, survives restarts, replays by segment, skips a torn tail."""

from __future__ import annotations

from integrations.spool import DiskSpool


def test_appended_messages_come_back_in_order_with_their_keys(tmp_path):
    spool = DiskSpool(tmp_path)
    assert spool.append(b"search", b"v1") and spool.append(None, b"v2")
    seg = spool.take()
    assert seg.records == [(b"search", b"v1"), (None, b"v2")]
    spool.ack(seg)
    assert spool.pending_bytes == 0 and spool.take() is None


def test_full_spool_refuses_instead_of_growing(tmp_path):
    spool = DiskSpool(tmp_path, max_bytes=100)
    assert spool.append(b"k", b"x" * 50)
    assert not spool.append(b"k", b"x" * 50)
    assert len(spool.take().records) == 1


def test_spooled_messages_survive_a_process_restart(tmp_path):
    first = DiskSpool(tmp_path)
    first.append(b"k", b"one")
    first.close()
    again = DiskSpool(tmp_path)
    assert again.pending_bytes > 0 and again.take().records == [(b"k", b"one")]


def test_a_leased_segment_is_not_handed_out_twice_and_new_appends_go_to_a_new_segment(tmp_path):
    spool = DiskSpool(tmp_path)
    spool.append(b"k", b"a")
    seg = spool.take()
    spool.append(b"k", b"b")
    seg2 = spool.take()
    assert seg2.records == [(b"k", b"b")] and seg2.path != seg.path
    assert spool.take() is None


def test_a_torn_record_at_the_end_of_a_segment_is_skipped(tmp_path):
    spool = DiskSpool(tmp_path)
    spool.append(b"k", b"whole")
    spool.append(b"k", b"torn")
    spool.close()
    path = next(tmp_path.glob("seg-*.spool"))
    path.write_bytes(path.read_bytes()[:-3])
    assert DiskSpool(tmp_path).take().records == [(b"k", b"whole")]
