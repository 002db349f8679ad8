"""Short person records (name, address, birth date) with planted duplicates, for near-dup on short texts.

Record linkage data is nothing like a corpus of reviews: a row is 40-70 characters over six fields,
so one typo changes a third of its word 3-grams and word shingles find almost none of the copies.
This generator plants the edits real registers carry, each kind named in ``dup_kind`` with the
original in ``dup_of``, so recall and precision can be measured per kind:

- ``exact``: the same record again;
- ``typo``: one or two keyboard slips (a letter substituted, dropped, doubled or two swapped);
- ``swap``: given name and surname exchanged;
- ``abbreviation``: street suffix (Avenue -> Ave), given name to an initial, or a city prefix (Saint -> St);
- ``missing``: the postcode or the birth date left empty;
- ``mixed``: two or three of the above at once (the hardest copies).

Two kinds of hard negatives are planted as ordinary originals (empty ``dup_of``): *household* members
(same surname and address, another given name and birth date) and *namesakes* (same full name, another
address and birth date). A household member shares about half of a record's character 3-grams, as many
as a ``mixed`` copy, so they are what keeps precision honest.

Like the review corpus (doughflow.data.synthetic.textgen), row ``p`` is a pure function of ``(seed, p)``:
shards are drawn independently, in parallel, and 1M+ rows never sit in memory.

``python -m doughflow.data.synthetic.records --out data/people --rows 20000``
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

GIVEN = (
    "james",
    "mary",
    "robert",
    "patricia",
    "john",
    "jennifer",
    "michael",
    "linda",
    "william",
    "elizabeth",
    "david",
    "barbara",
    "richard",
    "susan",
    "joseph",
    "jessica",
    "thomas",
    "sarah",
    "charles",
    "karen",
    "christopher",
    "nancy",
    "daniel",
    "lisa",
    "matthew",
    "betty",
    "anthony",
    "margaret",
    "mark",
    "sandra",
    "donald",
    "ashley",
    "steven",
    "kimberly",
    "paul",
    "emily",
    "andrew",
    "donna",
    "joshua",
    "michelle",
    "kenneth",
    "carol",
    "kevin",
    "amanda",
    "brian",
    "melissa",
    "george",
    "deborah",
    "timothy",
    "stephanie",
    "ronald",
    "rebecca",
    "edward",
    "sharon",
    "jason",
    "laura",
    "jeffrey",
    "cynthia",
    "ryan",
    "kathleen",
    "jacob",
    "amy",
    "gary",
    "angela",
    "nicholas",
    "shirley",
    "eric",
    "anna",
    "jonathan",
    "brenda",
    "stephen",
    "pamela",
    "larry",
    "emma",
    "justin",
    "nicole",
    "scott",
    "helen",
    "brandon",
    "samantha",
    "benjamin",
    "katherine",
    "samuel",
    "christine",
    "gregory",
    "debra",
    "alexander",
    "rachel",
    "frank",
    "carolyn",
    "patrick",
    "janet",
    "raymond",
    "catherine",
    "jack",
    "maria",
    "dennis",
    "heather",
    "jerry",
    "diane",
    "tyler",
    "ruth",
    "aaron",
    "julie",
    "jose",
    "olivia",
    "adam",
    "joyce",
    "nathan",
    "virginia",
    "henry",
    "victoria",
    "douglas",
    "kelly",
    "zachary",
    "lauren",
    "peter",
    "christina",
    "kyle",
    "joan",
    "ethan",
    "evelyn",
    "walter",
    "judith",
    "noah",
    "megan",
    "jeremy",
    "andrea",
    "christian",
    "cheryl",
    "keith",
    "hannah",
    "roger",
    "jacqueline",
    "terry",
    "martha",
    "gerald",
    "gloria",
    "harold",
    "teresa",
    "sean",
    "ann",
    "austin",
    "sara",
    "carl",
    "madison",
    "arthur",
    "frances",
    "lawrence",
    "kathryn",
    "dylan",
    "janice",
    "jesse",
    "jean",
    "jordan",
    "abigail",
    "bryan",
    "alice",
    "billy",
    "julia",
    "joe",
    "judy",
    "bruce",
    "sophia",
    "gabriel",
    "grace",
    "logan",
    "denise",
    "albert",
    "amber",
    "willie",
    "doris",
    "alan",
    "marilyn",
    "juan",
    "danielle",
    "wayne",
    "beverly",
    "elijah",
    "isabella",
    "randy",
    "theresa",
    "roy",
    "diana",
    "vincent",
    "natalie",
    "ralph",
    "brittany",
    "eugene",
    "charlotte",
    "russell",
    "marie",
    "bobby",
    "kayla",
    "mason",
    "alexis",
    "philip",
    "lori",
)
SURNAMES = (
    "smith",
    "johnson",
    "williams",
    "brown",
    "jones",
    "garcia",
    "miller",
    "davis",
    "rodriguez",
    "martinez",
    "hernandez",
    "lopez",
    "gonzalez",
    "wilson",
    "anderson",
    "thomas",
    "taylor",
    "moore",
    "jackson",
    "martin",
    "lee",
    "perez",
    "thompson",
    "white",
    "harris",
    "sanchez",
    "clark",
    "ramirez",
    "lewis",
    "robinson",
    "walker",
    "young",
    "allen",
    "king",
    "wright",
    "scott",
    "torres",
    "nguyen",
    "hill",
    "flores",
    "green",
    "adams",
    "nelson",
    "baker",
    "hall",
    "rivera",
    "campbell",
    "mitchell",
    "carter",
    "roberts",
    "gomez",
    "phillips",
    "evans",
    "turner",
    "diaz",
    "parker",
    "cruz",
    "edwards",
    "collins",
    "reyes",
    "stewart",
    "morris",
    "morales",
    "murphy",
    "cook",
    "rogers",
    "gutierrez",
    "ortiz",
    "morgan",
    "cooper",
    "peterson",
    "bailey",
    "reed",
    "kelly",
    "howard",
    "ramos",
    "kim",
    "cox",
    "ward",
    "richardson",
    "watson",
    "brooks",
    "chavez",
    "wood",
    "james",
    "bennett",
    "gray",
    "mendoza",
    "ruiz",
    "hughes",
    "price",
    "alvarez",
    "castillo",
    "sanders",
    "patel",
    "myers",
    "long",
    "ross",
    "foster",
    "jimenez",
    "powell",
    "jenkins",
    "perry",
    "russell",
    "sullivan",
    "bell",
    "coleman",
    "butler",
    "henderson",
    "barnes",
    "gonzales",
    "fisher",
    "vasquez",
    "simmons",
    "romero",
    "jordan",
    "patterson",
    "alexander",
    "hamilton",
    "graham",
    "reynolds",
    "griffin",
    "wallace",
    "moreno",
    "west",
    "cole",
    "hayes",
    "bryant",
    "herrera",
    "gibson",
    "ellis",
    "tran",
    "medina",
    "aguilar",
    "stevens",
    "murray",
    "ford",
    "castro",
    "marshall",
    "owens",
    "harrison",
    "fernandez",
    "mcdonald",
    "woods",
    "washington",
    "kennedy",
    "wells",
    "vargas",
    "henry",
    "chen",
    "freeman",
    "webb",
    "tucker",
    "guzman",
    "burns",
    "crawford",
    "olson",
    "simpson",
    "porter",
    "hunter",
    "gordon",
    "mendez",
    "silva",
    "shaw",
    "snyder",
    "mason",
    "dixon",
    "munoz",
    "hunt",
    "hicks",
    "holmes",
    "palmer",
    "wagner",
    "black",
    "robertson",
    "boyd",
    "rose",
    "stone",
    "salazar",
    "fox",
    "warren",
    "mills",
    "meyer",
    "rice",
    "schmidt",
    "garza",
    "daniels",
    "ferguson",
    "nichols",
    "stephens",
    "soto",
    "weaver",
    "ryan",
    "gardner",
)
STREETS = (
    "oak",
    "maple",
    "cedar",
    "pine",
    "elm",
    "washington",
    "lake",
    "hill",
    "park",
    "main",
    "view",
    "walnut",
    "spring",
    "north",
    "ridge",
    "lincoln",
    "church",
    "willow",
    "mill",
    "sunset",
    "railroad",
    "jackson",
    "cherry",
    "highland",
    "johnson",
    "forest",
    "jefferson",
    "center",
    "river",
    "meadow",
    "chestnut",
    "franklin",
    "adams",
    "lakeview",
    "hickory",
    "madison",
    "dogwood",
    "sycamore",
    "laurel",
    "birch",
    "magnolia",
    "poplar",
    "valley",
    "woodland",
    "cottage",
    "orchard",
    "aspen",
    "heather",
    "juniper",
    "holly",
)
SUFFIXES = (
    ("street", "st"),
    ("avenue", "ave"),
    ("road", "rd"),
    ("lane", "ln"),
    ("drive", "dr"),
    ("court", "ct"),
    ("place", "pl"),
    ("boulevard", "blvd"),
    ("terrace", "ter"),
    ("circle", "cir"),
)
CITIES = (
    "springfield",
    "riverside",
    "franklin",
    "greenville",
    "bristol",
    "clinton",
    "fairview",
    "salem",
    "madison",
    "georgetown",
    "arlington",
    "ashland",
    "burlington",
    "manchester",
    "marion",
    "oxford",
    "clayton",
    "jackson",
    "milton",
    "auburn",
    "dayton",
    "lexington",
    "milford",
    "winchester",
    "saint louis",
    "saint paul",
    "fort worth",
    "fort collins",
    "mount vernon",
    "mount pleasant",
    "north haven",
    "south bend",
    "east orange",
    "west chester",
    "new albany",
    "port clinton",
    "lake forest",
    "cedar rapids",
    "grand rapids",
    "palm springs",
)
CITY_PREFIXES = (
    ("saint ", "st "),
    ("fort ", "ft "),
    ("mount ", "mt "),
    ("north ", "n "),
    ("south ", "s "),
    ("east ", "e "),
    ("west ", "w "),
)
FIELDS = ("given_name", "surname", "street", "city", "postcode", "birth_date")
KINDS = ("exact", "typo", "swap", "abbreviation", "missing", "mixed", "household", "namesake")
KEYBOARD = ("qwertyuiop", "asdfghjkl", "zxcvbnm")


def schema(with_ids: bool = True, with_truth: bool = True) -> pa.Schema:
    fields = [pa.field("rec_id", pa.string())] if with_ids else []
    fields += [pa.field(name, pa.string()) for name in FIELDS]
    if with_truth:
        fields += [pa.field("dup_of", pa.string()), pa.field("dup_kind", pa.string())]
    return pa.schema(fields)


@dataclass(frozen=True)
class RecordCorpusSpec:
    """Rates are shares of all rows; the rest are originals. Household members and namesakes are
    originals too (not duplicates), drawn near an earlier original."""

    rows: int
    seed: int = 5
    exact_rate: float = 0.02
    typo_rate: float = 0.06
    swap_rate: float = 0.03
    abbreviation_rate: float = 0.05
    missing_rate: float = 0.02
    mixed_rate: float = 0.04
    household_rate: float = 0.05
    namesake_rate: float = 0.02


def _zipf_cdf(n: int, exponent: float = 0.8) -> np.ndarray:
    cdf = np.cumsum(np.arange(1, n + 1, dtype=np.float64) ** -exponent)
    return cdf / cdf[-1]


def _title(text: str) -> str:
    return " ".join(word.capitalize() for word in text.split(" "))


def _typo(text: str, rng: np.random.Generator) -> str:
    """One keyboard slip inside a word: a neighbour key, a dropped, doubled or transposed letter."""
    letters = [i for i, c in enumerate(text) if c.isalpha()]
    if len(letters) < 2:
        return text + text[-1:] if text else text
    i = letters[int(rng.integers(0, len(letters)))]
    op = int(rng.integers(0, 4))
    if op == 0:  # a key next to the intended one
        row = next((r for r in KEYBOARD if text[i].lower() in r), KEYBOARD[0])
        at = row.index(text[i].lower()) if text[i].lower() in row else 0
        near = row[max(0, at - 1)] if rng.random() < 0.5 and at > 0 else row[min(len(row) - 1, at + 1)]
        return text[:i] + near + text[i + 1 :]
    if op == 1:
        return text[:i] + text[i + 1 :]
    if op == 2:
        return text[:i] + text[i] + text[i:]
    j = i + 1 if i + 1 < len(text) and text[i + 1].isalpha() else i - 1
    a, b = min(i, j), max(i, j)
    return text[:a] + text[b] + text[a] + text[b + 1 :]


def _abbreviate(record: dict, rng: np.random.Generator) -> dict:
    out = dict(record)
    options = ["given"]
    if any(out["street"].endswith(" " + long) for long, _ in SUFFIXES):
        options.append("street")
    if any(out["city"].lower().startswith(long) for long, _ in CITY_PREFIXES):
        options.append("city")
    choice = options[int(rng.integers(0, len(options)))]
    if choice == "given":
        out["given_name"] = out["given_name"][0] + "."
    elif choice == "street":
        for long, short in SUFFIXES:
            if out["street"].endswith(" " + long):
                out["street"] = out["street"][: -len(long)] + short
                break
    else:
        for long, short in CITY_PREFIXES:
            if out["city"].lower().startswith(long):
                out["city"] = short + out["city"][len(long) :]
                break
    return out


class RecordCorpus:
    """Row ``p`` of the corpus, drawn from ``(seed, p)`` alone."""

    def __init__(self, spec: RecordCorpusSpec) -> None:
        self.spec = spec
        s = spec
        rates = [
            s.exact_rate,
            s.typo_rate,
            s.swap_rate,
            s.abbreviation_rate,
            s.missing_rate,
            s.mixed_rate,
            s.household_rate,
            s.namesake_rate,
        ]
        if min(rates) < 0 or sum(rates) >= 1:
            raise ValueError(f"record corpus rates must be >= 0 and sum below 1, got {rates}")
        self.bounds = np.cumsum(rates)
        self.given_cdf, self.surname_cdf = _zipf_cdf(len(GIVEN)), _zipf_cdf(len(SURNAMES))
        self.street_cdf, self.city_cdf = _zipf_cdf(len(STREETS)), _zipf_cdf(len(CITIES), 0.6)

    def kind(self, position: int) -> str:
        u = (position * 0x9E3779B97F4A7C15 + self.spec.seed * 0xBF58476D1CE4E5B9) % 2**64 / 2**64
        if position == 0 or u >= self.bounds[-1]:
            return "original"
        return KINDS[int(np.searchsorted(self.bounds, u, side="right"))]

    def _pick(self, names: tuple[str, ...], cdf: np.ndarray, rng: np.random.Generator) -> str:
        return names[int(np.searchsorted(cdf, rng.random()))]

    def _birth_date(self, rng: np.random.Generator) -> str:
        return f"{int(rng.integers(1935, 2006))}-{int(rng.integers(1, 13)):02d}-{int(rng.integers(1, 29)):02d}"

    def _address(self, rng: np.random.Generator) -> dict:
        long, _ = SUFFIXES[int(rng.integers(0, len(SUFFIXES)))]
        street = f"{int(rng.integers(1, 9999))} {_title(self._pick(STREETS, self.street_cdf, rng))} {_title(long)}"
        return {
            "street": street,
            "city": _title(self._pick(CITIES, self.city_cdf, rng)),
            "postcode": f"{int(rng.integers(1000, 99999)):05d}",
        }

    def original(self, position: int) -> dict:
        """The record first drawn at ``position`` (also for the hard negatives, which then change it)."""
        rng = np.random.default_rng([self.spec.seed, position])
        return {
            "given_name": _title(self._pick(GIVEN, self.given_cdf, rng)),
            "surname": _title(self._pick(SURNAMES, self.surname_cdf, rng)),
            **self._address(rng),
            "birth_date": self._birth_date(rng),
        }

    def source(self, position: int, rng: np.random.Generator) -> int:
        while True:
            q = int(rng.integers(0, position))
            if self.kind(q) == "original":
                return q

    def _edit(self, record: dict, kind: str, rng: np.random.Generator) -> dict:
        out = dict(record)
        if kind == "typo":
            for _ in range(int(rng.integers(1, 3))):
                field = ("given_name", "surname", "street", "city")[int(rng.integers(0, 4))]
                out[field] = _typo(out[field], rng)
        elif kind == "swap":
            out["given_name"], out["surname"] = out["surname"], out["given_name"]
        elif kind == "abbreviation":
            out = _abbreviate(out, rng)
        elif kind == "missing":
            out[("postcode", "birth_date")[int(rng.integers(0, 2))]] = None
        return out

    def row(self, position: int) -> dict:
        kind = self.kind(position)
        rng = np.random.default_rng([self.spec.seed, position, 1])
        rec_id = f"r-{position:09d}"
        if kind == "original":
            return {"rec_id": rec_id, **self.original(position), "dup_of": "", "dup_kind": ""}
        q = self.source(position, rng)
        base = self.original(q)
        if kind == "household":
            person = self.original(position)
            record = {**base, "given_name": person["given_name"], "birth_date": person["birth_date"]}
            return {"rec_id": rec_id, **record, "dup_of": "", "dup_kind": ""}
        if kind == "namesake":
            record = {**self.original(position), "given_name": base["given_name"], "surname": base["surname"]}
            return {"rec_id": rec_id, **record, "dup_of": "", "dup_kind": ""}
        if kind == "mixed":
            record = base
            edits = ["typo", "swap", "abbreviation", "missing"]
            for index in rng.choice(len(edits), size=int(rng.integers(2, 4)), replace=False):
                record = self._edit(record, edits[int(index)], rng)
        else:
            record = self._edit(base, kind, rng)
        return {"rec_id": rec_id, **record, "dup_of": f"r-{q:09d}", "dup_kind": kind}


def _write(spec: RecordCorpusSpec, start: int, stop: int, path: str, with_ids: bool, with_truth: bool, fmt: str) -> int:
    corpus = RecordCorpus(spec)
    out_schema = schema(with_ids, with_truth)
    rows = [corpus.row(p) for p in range(start, stop)]
    table = pa.Table.from_pylist([{k: r[k] for k in out_schema.names} for r in rows], schema=out_schema)
    if fmt == "csv":
        import pyarrow.csv as pacsv

        pacsv.write_csv(table, path)
    else:
        pq.write_table(table, path)
    return len(rows)


def generate_records(
    spec: RecordCorpusSpec,
    out_dir: Path,
    rows_per_shard: int = 50000,
    *,
    with_ids: bool = True,
    with_truth: bool = True,
    fmt: str = "parquet",
    workers: int | None = None,
) -> list[Path]:
    """Write the records as shards (``fmt`` parquet or csv), one process per core. Without ids the
    truth columns are left out as well: ``dup_of`` names ids that the rows would not carry."""
    from concurrent.futures import ProcessPoolExecutor

    if fmt not in ("parquet", "csv"):
        raise ValueError(f"format must be parquet or csv, got {fmt!r}")
    with_truth = with_truth and with_ids
    out_dir.mkdir(parents=True, exist_ok=True)
    bounds = [(s, min(s + rows_per_shard, spec.rows)) for s in range(0, spec.rows, rows_per_shard)]
    paths = [out_dir / f"people-{i:05d}.{fmt}" for i in range(len(bounds))]
    workers = workers or min(len(bounds), os.cpu_count() or 1)
    args = (
        [spec] * len(bounds),
        [a for a, _ in bounds],
        [b for _, b in bounds],
        [str(p) for p in paths],
        [with_ids] * len(bounds),
        [with_truth] * len(bounds),
        [fmt] * len(bounds),
    )
    if workers <= 1:
        for arg in zip(*args):
            _write(*arg)
        return paths
    with ProcessPoolExecutor(max_workers=workers) as pool:
        list(pool.map(_write, *args))
    return paths


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="folder to write the shards into")
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--rows-per-shard", type=int, default=50000)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--format", default="parquet", choices=["parquet", "csv"])
    parser.add_argument("--no-ids", action="store_true", help="leave out rec_id (and the truth columns)")
    args = parser.parse_args(argv)
    paths = generate_records(
        RecordCorpusSpec(rows=args.rows, seed=args.seed),
        Path(args.out),
        args.rows_per_shard,
        with_ids=not args.no_ids,
        fmt=args.format,
    )
    print(f"wrote {args.rows} records in {len(paths)} file(s) under {args.out}")


if __name__ == "__main__":
    main()
