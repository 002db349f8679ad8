"""Exact verification on the workers gives the true Jaccard of shingle sets for every candidate edge,
however the rows are spread over shards and the edges over parts."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import given, settings
from hypothesis import strategies as st

from doughflow.data.dedup.minhash import normalise_text, reference_shingles
from doughflow.data.dedup.sketch import id_keys
from doughflow.data.dedup.textverify import endpoint_shingles, verify_part

words = st.lists(st.sampled_from(["pizza", "crust", "hot", "Cold!", "the", "olive", "ça", "x"]), min_size=1, max_size=9)


@settings(max_examples=25, deadline=None)
@given(
    texts=st.lists(words.map(" ".join), min_size=2, max_size=12),
    shards=st.integers(1, 3),
    parts=st.integers(1, 4),
    data=st.data(),
)
def test_scores_equal_reference_jaccard(texts, shards, parts, data, tmp_path_factory):
    folder = tmp_path_factory.mktemp("verify")
    ids = [f"d{i:03d}" for i in range(len(texts))]
    pairs = data.draw(
        st.lists(
            st.tuples(st.integers(0, len(texts) - 1), st.integers(0, len(texts) - 1)).filter(lambda p: p[0] != p[1]),
            min_size=1,
            max_size=15,
        )
    )
    keys = id_keys(ids)
    a, b = keys[[i for i, _ in pairs]], keys[[j for _, j in pairs]]
    np.savez(folder / "edges.npz", a=a, b=b, ends=np.unique(np.concatenate([a, b])))
    paths, maps = [], []
    for s in range(shards):
        rows = list(range(s, len(texts), shards))
        paths.append(str(folder / f"in-{s}.parquet"))
        pq.write_table(
            pa.table(
                {
                    "doc_id": pa.array([ids[r] for r in rows], pa.string()),  # typed: a shard may be empty
                    "text": pa.array([texts[r] for r in rows], pa.string()),
                }
            ),
            paths[-1],
        )
        maps.append(str(folder / f"ends-{s}.arrow"))
        endpoint_shingles(
            paths[-1],
            maps[-1],
            id_column="doc_id",
            text_column="text",
            edges_path=str(folder / "edges.npz"),
            parts=parts,
            kind="word",
            size=2,
            short_chars=0,
        )
    scored = sorted(
        (r.edge, r.id_a, r.id_b, r.score) for p in range(parts) for r in verify_part(maps, p, 0).itertuples()
    )
    normal = normalise_text(pa.array(texts)).to_pylist()
    expected = []
    for e, (i, j) in enumerate(pairs):
        sa, sb = set(reference_shingles(normal[i], "word", 2)), set(reference_shingles(normal[j], "word", 2))
        expected.append((e, ids[i], ids[j], len(sa & sb) / max(len(sa | sb), 1)))
    assert scored == expected
