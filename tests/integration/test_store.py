"""The event store under the append protocol and both executors, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest
from eventsourcing.persistence import IntegrityError
from psycopg import sql

from adapters.group_commit import GroupCommitter, SingleSaveExecutor, run_alone
from adapters.settings import Settings
from adapters.store import ledger_environment, libpq_conninfo
from adapters.working_set import WorkingSet
from api.app import build_services
from api.services import Services
from domain.append import AppendResult
from domain.chain import event_record, record_hash
from domain.errors import LedgerError, OutOfSequence, RefundExceedsRemaining, VersionConflict
from domain.ledger import Command, Ledger
from domain.till import TillSession
from domain.transaction import Transaction
from domain.transaction_actions import TERMINAL_MAX_AGE_S
from tests.conftest import SteppingClock, fast_hasher, make_services
from tests.integration.counter_commands import CounterCommands, card_fields


# ---- how the tests drive and read the store ---------------------------------------------------------
def run_each(executor: Any, commands: Sequence[Command[Any]]) -> list[Any]:
    """One command after the other, each answered before the next is sent."""
    return [executor.run(command) for command in commands]


def burst(committer: GroupCommitter, commands: Sequence[Command[Any]]) -> list[Any]:
    """Submit every command at once from asyncio tasks, each getting its own answer or error.

    The writer is paused while the tasks queue their jobs, so the whole burst lands in one batch.
    """
    committer.stop()

    async def submit_all() -> list[Any]:
        tasks = [asyncio.ensure_future(committer.submit(command)) for command in commands]
        await asyncio.sleep(0)  # every task has queued its job
        committer.start()
        return await asyncio.gather(*tasks, return_exceptions=True)

    batches = committer.batches
    answers = asyncio.run(submit_all())
    assert committer.batches == batches + 1, "the burst was meant to share one batch"
    return answers


def stored_streams(ledger: Ledger) -> dict[UUID, list[dict[str, Any]]]:
    """Every stored event, as canonical records grouped by stream, read through the notification log."""
    streams: dict[UUID, list[dict[str, Any]]] = {}
    for notification in ledger.recorder.select_notifications(start=1, limit=100_000):
        event = ledger.mapper.to_domain_event(notification)
        streams.setdefault(event.originator_id, []).append(event_record(event))
    return streams


def types_of(ledger: Ledger, stream_id: UUID) -> list[str]:
    return [type(e).__name__ for e in ledger.events.get(stream_id)]


@pytest.fixture
def committer(services: Services) -> GroupCommitter:
    assert isinstance(services.executor, GroupCommitter)
    services.executor.start()
    return services.executor


@pytest.fixture
def counter(services: Services, committer: GroupCommitter) -> CounterCommands:
    """Terminal 30000001 registered, its till open and operator 01 signed in, through the committer."""
    commands = CounterCommands(services.clock)
    run_each(committer, commands.setup())
    return commands


@pytest.fixture
def single_save_settings(settings: Settings, tmp_path: Path) -> Iterator[Settings]:
    """A second, empty store of the same kind, written one save per command."""
    schema = f"{settings.database_schema}_single"
    yield settings.model_copy(update={"group_commit": False, "data_dir": tmp_path / "single", "database_schema": schema})
    if settings.uses_postgres:
        with psycopg.connect(libpq_conninfo(settings), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture
def other_process(settings: Settings) -> Iterator[Services]:
    """A second service process on the same store, with its own Ledger and connections."""
    other = make_services(settings, SteppingClock())
    try:
        yield other
    finally:
        other.close()


# ---- round trip through the store ----------------------------------------------------------------
def test_a_saved_transaction_loads_back_identical_and_its_chain_verifies_in_a_new_ledger(
        settings: Settings, services: Services, counter: CounterCommands) -> None:
    sale = uuid4()
    work = WorkingSet(services.ledger, None)  # one in-memory copy, saved after every command
    hashes = []
    for command in counter.card_sale(sale, 12_345, brand="visa", last4="0004"):
        hashes.append(command(work).hash)
        services.ledger.save(*work.changed())
    in_memory = work.touched[sale]

    reopened = Ledger(env=ledger_environment(settings, create_tables=False))
    try:
        reloaded = reopened.load(sale, Transaction)
        records, check = reopened.history(sale, Transaction)
    finally:
        reopened.close()

    def state(aggregate: Any) -> dict[str, Any]:
        return {k: v for k, v in vars(aggregate).items() if k != "_pending_events"}

    assert state(reloaded) == state(in_memory)
    assert (reloaded.version, reloaded.status, reloaded.amount_minor, reloaded.card["masked_pan"]) == (
        10, "completed", 12_345, "476173******0004")
    assert check.valid is True
    assert [r["hash"] for r in records] == hashes
    assert reloaded.chain_head == hashes[-1] == record_hash({k: v for k, v in records[-1].items() if k != "hash"})


def test_creating_the_same_stream_twice_conflicts_and_the_append_protocol_answers_replay_or_conflict(
        services: Services, counter: CounterCommands) -> None:
    ledger = services.ledger
    sale = uuid4()
    opening = counter.open(sale)
    first, second = WorkingSet(ledger, None), WorkingSet(ledger, None)
    mine, theirs = opening(first), opening(second)  # both found no stream and created it at version 1
    assert (mine.version, theirs.version) == (1, 1)
    ledger.save(*first.changed())

    with pytest.raises(IntegrityError):
        ledger.save(*second.changed())

    assert types_of(ledger, sale) == ["TransactionOpened"]
    retried = run_alone(ledger, opening)
    assert (retried.replayed, retried.version, retried.hash) == (True, 1, mine.hash)
    with pytest.raises(VersionConflict) as conflict:
        run_alone(ledger, counter.open(sale, at=0, method="cash"))
    assert conflict.value.current_version == 1
    assert types_of(ledger, sale) == ["TransactionOpened"]
    assert types_of(ledger, counter.terminal_id).count("TransactionStarted") == 1


# ---- the two executors ---------------------------------------------------------------------------
def test_the_group_committer_and_single_saves_record_the_same_events_for_the_same_commands(
        settings: Settings, single_save_settings: Settings) -> None:
    commands = CounterCommands(SteppingClock())
    setup = commands.setup()
    sales = [uuid4() for _ in range(4)]
    sale_scripts = [commands.card_sale(sale, 1_000 * (i + 1), brand=brand, last4=f"{i:04d}")
                    for i, (sale, brand) in enumerate(zip(sales, ["unionpay", "visa", "mastercard", "unionpay"]))]
    # Rounds of commands: setup one by one, then every sale's next step side by side.
    rounds = [[command] for command in setup] + [list(step) for step in zip(*sale_scripts)]

    grouped = build_services(settings, clock=SteppingClock(), hasher=fast_hasher())
    single = build_services(single_save_settings, clock=SteppingClock(), hasher=fast_hasher())
    assert isinstance(grouped.executor, GroupCommitter) and isinstance(single.executor, SingleSaveExecutor)
    try:
        grouped.executor.start()
        grouped_answers = [burst(grouped.executor, round_) for round_ in rounds]
        single_answers = [run_each(single.executor, round_) for round_ in rounds]
        grouped_streams, single_streams = stored_streams(grouped.ledger), stored_streams(single.ledger)
    finally:
        for built in (grouped, single):
            built.executor.stop()
            built.ledger.close()

    def comparable(answer: Any) -> Any:
        if isinstance(answer, AppendResult):
            return (answer.stream_id, answer.version, answer.event_type, answer.hash, answer.replayed)
        return repr(answer) if isinstance(answer, BaseException) else getattr(answer, "id", answer)

    assert [[comparable(a) for a in r] for r in grouped_answers] == [[comparable(a) for a in r] for r in single_answers]
    assert not any(isinstance(a, BaseException) for r in grouped_answers for a in r)
    assert grouped_streams == single_streams
    assert {len(single_streams[sale]) for sale in sales} == {10}


# ---- one bad append never fails its neighbours -----------------------------------------------------
def _sales_at_amount_stage(committer: GroupCommitter, counter: CounterCommands, n: int,
                           batch_no: str = "000001") -> list[UUID]:
    sales = [uuid4() for _ in range(n)]
    run_each(committer, [counter.open(sale, batch_no=batch_no) for sale in sales])
    return sales


def test_a_burst_with_one_out_of_sequence_append_records_every_valid_one_and_names_the_error_to_the_bad_one(
        services: Services, committer: GroupCommitter, counter: CounterCommands) -> None:
    sales = _sales_at_amount_stage(committer, counter, 5)
    burst_commands = [counter.txn(sale, "AmountEntered", amount_minor=100 * (i + 1), currency="CNY")
                      for i, sale in enumerate(sales)]
    bad = counter.txn(sales[2], "TransactionCompleted", at=1)  # no amount yet: cannot complete
    burst_commands.insert(2, bad)

    answers = burst(committer, burst_commands)

    assert isinstance(answers[2], OutOfSequence)
    good = answers[:2] + answers[3:]
    assert all(isinstance(a, AppendResult) and a.version == 2 and not a.replayed for a in good), good
    assert all(a.position is not None for a in good)
    for i, sale in enumerate(sales):
        assert types_of(services.ledger, sale) == ["TransactionOpened", "AmountEntered"]
        assert services.ledger.load(sale, Transaction).amount_minor == 100 * (i + 1)


def test_each_append_of_a_burst_is_answered_with_the_log_position_of_its_own_event(
        services: Services, committer: GroupCommitter, counter: CounterCommands) -> None:
    sales = _sales_at_amount_stage(committer, counter, 6)
    answers = burst(committer, [counter.txn(sale, "AmountEntered", amount_minor=100 + i, currency="CNY")
                                for i, sale in enumerate(sales)])

    logged = {(n.originator_id, n.originator_version): n.id
              for n in services.ledger.recorder.select_notifications(start=1, limit=10_000)}
    assert [a.position for a in answers] == [logged[(sale, 2)] for sale in sales]
    assert len({a.position for a in answers}) == len(sales)


def test_a_burst_with_one_half_applied_append_falls_back_and_still_records_every_valid_one_once(
        services: Services, committer: GroupCommitter, counter: CounterCommands) -> None:
    ledger = services.ledger
    original = uuid4()
    run_each(committer, counter.card_sale(original, 5_000))
    run_each(committer, [counter.till("BatchSettled", batch_no="000001")])
    refund_a, refund_b = uuid4(), uuid4()
    refund_steps = []
    for refund, amount in ((refund_a, 3_000), (refund_b, 3_000)):
        presented = card_fields()
        refund_steps.append([
            counter.open(refund, kind="refund", original=original, batch_no="000002"),
            counter.txn(refund, "AmountEntered", amount_minor=amount, currency="CNY"),
            counter.txn(refund, "AmountConfirmed"),
            counter.txn(refund, "CardPresented", **presented),
            counter.txn(refund, "PinVerified", method="online"),
        ])
    for steps in refund_steps:
        run_each(committer, steps)
    neighbours = _sales_at_amount_stage(committer, counter, 3, batch_no="000002")
    burst_commands = [counter.txn(sale, "AmountEntered", amount_minor=700, currency="CNY") for sale in neighbours]
    # Each refund alone fits the 5000 sale, both do not: the second records its own request and then
    # fails reserving the original's credit, a half-applied command.
    burst_commands[1:1] = [counter.txn(refund_a, "AuthorizationRequested", stan=counter.next_trace()),
                           counter.txn(refund_b, "AuthorizationRequested", stan=counter.next_trace())]

    answers = burst(committer, burst_commands)

    assert isinstance(answers[1], AppendResult) and answers[1].version == 6
    assert isinstance(answers[2], RefundExceedsRemaining)
    assert answers[2].extra["remaining_minor"] == 2_000
    for answer in answers[:1] + answers[3:]:
        assert isinstance(answer, AppendResult) and answer.version == 2 and not answer.replayed
    for sale in neighbours:
        assert types_of(ledger, sale) == ["TransactionOpened", "AmountEntered"]
    assert types_of(ledger, refund_a)[-1] == "AuthorizationRequested"
    assert types_of(ledger, refund_b)[-1] == "PinVerified"
    assert types_of(ledger, original).count("CreditReserved") == 1
    assert ledger.load(original, Transaction).refundable_minor == 2_000


def test_a_burst_with_one_append_the_store_cannot_encode_records_every_valid_one_and_fails_only_the_bad_one(
        services: Services, committer: GroupCommitter, counter: CounterCommands) -> None:
    sales = _sales_at_amount_stage(committer, counter, 4)
    run_each(committer, [counter.txn(sale, "AmountEntered", amount_minor=900, currency="CNY") for sale in sales])
    run_each(committer, [counter.txn(sale, "AmountConfirmed") for sale in sales])
    burst_commands = [counter.txn(sale, "CardReadFailed", entry_mode="chip", reason="chip not answering")
                      for sale in sales]
    # A lone surrogate is valid JSON ("\ud800") but not encodable as UTF-8.
    burst_commands[1] = counter.txn(sales[1], "CardReadFailed", at=3, entry_mode="chip", reason="bad \ud800 read")

    answers = burst(committer, burst_commands)

    last_recorded = [types_of(services.ledger, sale)[-1] for sale in sales]
    assert last_recorded == ["CardReadFailed", "AmountConfirmed", "CardReadFailed", "CardReadFailed"]
    for answer in answers[:1] + answers[2:]:
        assert isinstance(answer, AppendResult) and answer.version == 4, answer
    assert isinstance(answers[1], LedgerError), f"the bad append got {type(answers[1]).__name__}, not a named error"


def test_a_command_that_fails_unexpectedly_after_changing_an_aggregate_fails_only_its_own_caller(
        services: Services, committer: GroupCommitter, counter: CounterCommands) -> None:
    sales = _sales_at_amount_stage(committer, counter, 3)
    faulty_target = sales[1]
    recorded_then_broke = counter.txn(faulty_target, "AmountEntered", amount_minor=1_500, currency="CNY")

    def faulty(uow: Any) -> Any:
        """Stands for a handler with a bug: it records an event, then raises something unnamed."""
        recorded_then_broke(uow)
        raise KeyError("a handler bug")

    answers = burst(committer, [counter.txn(sales[0], "AmountEntered", amount_minor=1_000, currency="CNY"),
                                faulty,
                                counter.txn(sales[2], "AmountEntered", amount_minor=3_000, currency="CNY")])

    # (told it succeeded, events stored) for each caller
    outcomes = [(isinstance(answer, AppendResult), len(types_of(services.ledger, sale)))
                for answer, sale in zip(answers, sales)]
    assert outcomes == [(True, 2), (False, 1), (True, 2)], answers


def test_identical_retries_in_one_burst_are_recorded_once_and_every_retry_is_answered_as_a_replay(
        services: Services, committer: GroupCommitter, counter: CounterCommands) -> None:
    [sale] = _sales_at_amount_stage(committer, counter, 1)
    entered = counter.txn(sale, "AmountEntered", amount_minor=4_200, currency="CNY")

    answers = burst(committer, [entered, entered, entered])

    assert types_of(services.ledger, sale) == ["TransactionOpened", "AmountEntered"]
    assert [type(a).__name__ for a in answers] == ["AppendResult"] * 3, answers
    assert [(a.version, a.replayed) for a in answers] == [(2, False), (2, True), (2, True)]
    assert len({a.hash for a in answers}) == 1


# ---- another process writes between the committer's load and its save --------------------------------
def test_a_stale_cache_after_another_process_wrote_is_resolved_and_each_caller_gets_its_own_answer(
        services: Services, committer: GroupCommitter, counter: CounterCommands, other_process: Services) -> None:
    ledger = services.ledger
    contested, untouched = uuid4(), uuid4()
    run_each(committer, [counter.open(contested), counter.open(untouched),
                         counter.txn(contested, "AmountEntered", amount_minor=2_500, currency="CNY")])
    # The committer now caches the till and the contested sale at version 2. Another API process
    # records the customer's confirmation and opens a sale on the same till.
    confirmed = counter.txn(contested, "AmountConfirmed")
    elsewhere = uuid4()
    run_alone(other_process.ledger, confirmed)
    run_alone(other_process.ledger, counter.open(elsewhere))

    new_sale = uuid4()
    answers = burst(committer, [
        confirmed,  # the same statement retried here: a replay
        counter.txn(contested, "CardPresented", at=2, **card_fields()),  # a different one: conflict
        counter.open(new_sale),  # the cached till is stale
        counter.txn(untouched, "AmountEntered", amount_minor=300, currency="CNY"),
    ])

    assert isinstance(answers[0], AppendResult) and (answers[0].replayed, answers[0].version) == (True, 3), answers[0]
    assert isinstance(answers[1], VersionConflict) and answers[1].current_version == 3, answers[1]
    assert isinstance(answers[2], AppendResult) and (answers[2].replayed, answers[2].version) == (False, 1)
    assert isinstance(answers[3], AppendResult) and (answers[3].replayed, answers[3].version) == (False, 2)
    assert types_of(ledger, contested) == ["TransactionOpened", "AmountEntered", "AmountConfirmed"]
    assert types_of(ledger, untouched) == ["TransactionOpened", "AmountEntered"]
    started = [e.transaction_id for e in ledger.events.get(counter.terminal_id)
               if type(e).__name__ == "TransactionStarted"]
    assert started == [contested, untouched, elsewhere, new_sale]
    assert ledger.history(counter.till_id, TillSession)[1].valid
    assert all(ledger.history(s, Transaction)[1].valid for s in (contested, untouched, elsewhere, new_sale))


def test_a_cached_terminal_catches_up_with_parameters_changed_elsewhere_once_it_is_older_than_its_max_age(
        services: Services, committer: GroupCommitter, counter: CounterCommands, other_process: Services,
        monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = uuid4(), uuid4()
    run_each(committer, [counter.open(first)])  # the committer now caches the terminal
    run_alone(other_process.ledger, Ledger.change_terminal_parameters(
        counter.stamp(None), counter.terminal_id, {"max_amount_minor": 77_700}))
    later = time.monotonic() + TERMINAL_MAX_AGE_S * 2  # past any aggregate's spread max_age
    monkeypatch.setattr("adapters.working_set.time.monotonic", lambda: later)

    run_each(committer, [counter.open(second)])

    # Brought up to date before the command ran, so its TransactionStarted did not conflict.
    assert committer.replayed_batches == 0
    assert services.ledger.load(second, Transaction).limits["max_amount_minor"] == 77_700


def test_a_write_by_another_process_between_the_committers_load_and_its_save_loses_and_duplicates_nothing(
        services: Services, committer: GroupCommitter, counter: CounterCommands, other_process: Services) -> None:
    ledger = services.ledger
    contested, neighbour = uuid4(), uuid4()
    run_each(committer, [counter.open(contested), counter.open(neighbour)])
    committer.cache.clear()  # the batch loads fresh from the store
    theirs = counter.txn(contested, "ItemScanned", at=1, barcode="6901234567892", name="绿茶 Green tea",
                         quantity=1, unit_price_minor=350)
    mine = counter.txn(contested, "ItemScanned", at=1, barcode="6901028075831", name="矿泉水 Water",
                       quantity=2, unit_price_minor=200)
    interleaved = {"done": False}

    def mine_then_theirs(uow: Any) -> Any:
        answer = mine(uow)  # loaded the contested sale and recorded an item in memory
        if not interleaved["done"]:  # the other process writes before the committer saves
            interleaved["done"] = True
            run_alone(other_process.ledger, theirs)
        return answer

    answers = burst(committer, [mine_then_theirs,
                                counter.txn(neighbour, "AmountEntered", amount_minor=800, currency="CNY")])

    assert isinstance(answers[0], VersionConflict) and answers[0].current_version == 2, answers[0]
    assert isinstance(answers[1], AppendResult) and answers[1].version == 2
    assert ledger.load(contested, Transaction).items == [
        {"barcode": "6901234567892", "name": "绿茶 Green tea", "quantity": 1, "unit_price_minor": 350}]
    assert types_of(ledger, neighbour) == ["TransactionOpened", "AmountEntered"]
    assert types_of(ledger, counter.terminal_id).count("TransactionStarted") == 2
