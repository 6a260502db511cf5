"""What one query has read from the store, shared by all its flat patterns: views of
neurons, index lookups and counts, and which neurons each pattern unit admits.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet

from circuitql.language.pattern import UnitConstraint
from circuitql.records import NeuronKey, NeuronRecord
from circuitql.store.base import NeuronView, Store

_Columns = tuple[frozenset[tuple[str, object]], tuple[str, ...] | None]
_Alongside = tuple[frozenset[tuple[str, object]], ...]


def _columns_key(columns: Mapping[str, object], models: Sequence[str] | None) -> _Columns:
    return frozenset(columns.items()), None if models is None else tuple(models)


def _alongside_key(alongside: Sequence[Mapping[str, object]]) -> _Alongside:
    return tuple(frozenset(columns.items()) for columns in alongside)


VIEW_LIMIT = 20_000  # cached neuron views per query (a 64-wide view is ~10 KB)


class NeuronCache:
    """What one query has read from the store, shared by all its flat patterns.

    Alternatives and unrolled repetitions (is_even's 2 to 9 folds, min4's 27 combinations of
    min) grow from the same anchors through the same neurons: each view is fetched once per
    query, and each dense fan-out's signature check against a pattern unit is asked once.
    Views are dropped, between batches, once there are ``VIEW_LIMIT`` of them.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self.views: dict[str, dict[str, NeuronView]] = defaultdict(dict)
        self.size = 0
        self.admitted: dict[UnitConstraint, dict[NeuronKey, bool]] = defaultdict(dict)
        self.lookups: dict[
            tuple[UnitConstraint, tuple[str, ...] | None, _Alongside], list[NeuronKey]
        ] = {}
        self.everywhere: dict[UnitConstraint, Mapping[str, AbstractSet[str]]] = {}
        self.counts: dict[_Columns, int] = {}
        self.found: dict[tuple[_Columns, _Alongside], list[tuple[str, NeuronRecord]]] = {}

    def count(self, columns: Mapping[str, object], models: Sequence[str] | None) -> int:
        """``Store.count_neurons``, asked once per query for each set of columns."""
        key = _columns_key(columns, models)
        if key not in self.counts:
            self.counts[key] = self.store.count_neurons(columns, models)
        return self.counts[key]

    def trim(self) -> None:
        """Forget every cached view once more than ``VIEW_LIMIT`` are held; call it between
        batches, never while one reads ``views``."""
        if self.size > VIEW_LIMIT:
            self.views, self.size = defaultdict(dict), 0

    def fetch(self, keys: Sequence[NeuronKey]) -> None:
        """Read the neurons of ``keys`` not cached yet into ``views``, in one store round trip;
        keys the store lacks stay absent."""
        missing = [(model, uid) for model, uid in keys if uid not in self.views[model]]
        if missing:
            for (model, uid), view in self.store.fetch(missing).items():
                self.views[model][uid] = view
                self.size += 1

    def lookup(
        self,
        constraint: UnitConstraint,
        models: Sequence[str] | None,
        alongside: Sequence[Mapping[str, object]] = (),
    ) -> list[NeuronKey]:
        """The neurons ``constraint`` admits, found through the store's indexes, in models
        that hold a neuron of each of ``alongside`` (``Store.find_neurons``); asked once per
        query for each constraint and company (the variants of a repetition that share
        both share the lookup)."""
        key = (constraint, None if models is None else tuple(models), _alongside_key(alongside))
        if key not in self.lookups:
            self.lookups[key] = [
                (model, record.uid)
                for model, record in self._find(constraint.columns(), models, alongside)
                if constraint.admits(record.signature)
            ]
        return self.lookups[key]

    def _find(
        self,
        columns: Mapping[str, object],
        models: Sequence[str] | None,
        alongside: Sequence[Mapping[str, object]],
    ) -> list[tuple[str, NeuronRecord]]:
        """``Store.find_neurons``, asked once per query for each set of columns: the same
        unit in different places of a pattern differs only in its fan-out bounds (min4's
        detector units, five ways), which no index column holds."""
        key = (_columns_key(columns, models), _alongside_key(alongside))
        if key not in self.found:
            self.found[key] = self.store.find_neurons(columns, models, alongside)
        return self.found[key]

    def admits(
        self, reached: Sequence[tuple[str, frozenset[str]]], constraint: UnitConstraint
    ) -> list[tuple[str, frozenset[str]]]:
        """Per (model, uids), the uids whose signature ``constraint`` admits. Units not yet
        fetched are judged by the store's indexed columns first, so that rejected neurons
        never leave it.

        When the store holds fewer neurons with those columns than there are uids (a rare
        signature, a zoo-sized batch of fan-outs), one index lookup of them all is cheaper
        than sending the keys, and every later step and variant reuses it: each model's
        uids then meet that model's admitted neurons in one set intersection."""
        columns = constraint.columns()
        if columns and self.count(columns, None) <= sum(len(uids) for _, uids in reached):
            everywhere = self._everywhere(constraint)
            return [(model, uids & everywhere.get(model, _NONE)) for model, uids in reached]
        views, known = self.views, self.admitted[constraint]
        unknown = list(
            dict.fromkeys(
                (model, uid)
                for model, uids in reached
                for uid in uids
                if uid not in views[model] and (model, uid) not in known
            )
        )
        if unknown:
            records = self.store.records(unknown, columns)
            for key in unknown:
                known[key] = key in records and constraint.admits(records[key].signature)
        return [
            (
                model,
                frozenset(
                    uid
                    for uid in uids
                    if (
                        constraint.admits(views[model][uid].record.signature)
                        if uid in views[model]
                        else known[model, uid]
                    )
                ),
            )
            for model, uids in reached
        ]

    def _everywhere(self, constraint: UnitConstraint) -> Mapping[str, AbstractSet[str]]:
        """Every stored neuron ``constraint`` admits, by model."""
        if constraint not in self.everywhere:
            by_model: dict[str, set[str]] = defaultdict(set)
            for model, uid in self.lookup(constraint, None):
                by_model[model].add(uid)
            self.everywhere[constraint] = by_model
        return self.everywhere[constraint]


_NONE: frozenset[str] = frozenset()
