"""The evaluation protocol, methods, runner, exports and CLI, on tiny corpora written in tmp_path.

The corpora are markdown files in the real QuickTakes format (front matter only,
``&nbsp;`` body), loaded with :func:`recommender.corpus.load_corpus`.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer
from typer.testing import CliRunner

from recommender.corpus import Corpus, load_corpus
from recommender.errors import ArticleNotFound
from recommender.evaluation import (
    BM25Method,
    KeywordMethod,
    LexicalFeatures,
    RandomMethod,
    SuggestionsFile,
    TfidfMethod,
    build_protocol,
    evaluate,
    export_suggestions,
    links_between,
    publication_folds,
    publication_groups,
    read_query_file,
    results_dict,
    run_method,
    score_suggestions,
    tie_breaker,
    top_rows,
    write_html,
)
from recommender.evaluation.methods import SuggestionsFileError
from recommender.text import article_text

LEUKEMIA = "what-are-the-latest-advancements-in-radiation-therapy-for-leukemia"


# --------------------------------------------------------------------------- corpus writing


def _slug(subject: str) -> str:
    return subject.lower().replace(" ", "-")


def url_of(subject: str, slug: str) -> str:
    return f"/learn/{_slug(subject)}/questions/{slug}"


def write_article(root: Path, subject: str, slug: str, ident: int, title: str, answer: str,
                  date: str | None = "2024-11-21", keywords: str = "",
                  links: tuple[tuple[int, str, str], ...] = (), no_index: bool = False) -> str:
    """One file as the site publishes it; ``links`` are (id, subject, slug). Returns its url."""
    url = url_of(subject, slug)
    lines = ["---", "_schema: default", f"id: {ident}"]
    if date is not None:
        lines.append(f"date: {date}")
    lines += [
        "title: >-", f"    {title}", "article_title: >-", f"    {title}",
        "date_format: MMM DD, YYYY", "post_on_text: Posted on", "seo:",
        f"  title: QuickTakes | {subject}", "  page_description: >-", f"    About {title}",
        "  page_keywords: >-", f"    {keywords}", "author: QuickTakes",
        "question: >-", f"    {title}", "answer: >-", f"    {answer}",
        f"subject: {subject}", f"file_name: {slug}.md", f"url: {url}", "score: -1.0",
    ]
    if no_index:
        lines.append("no_index: true")
    for n, (lid, lsubject, lslug) in enumerate(links, 1):
        lines += [f"related_article{n}:", f"    id: {lid}", "    title: >-",
                  f"        {lslug.replace('-', ' ')}", f"    subject: {lsubject}",
                  f"    url: {url_of(lsubject, lslug)}"]
    lines += ["---", "", "&nbsp;", ""]
    folder = root / _slug(subject)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{slug}.md").write_text("\n".join(lines), encoding="utf-8")
    return url


@pytest.fixture
def hand_corpus(tmp_path: Path) -> Corpus:
    """Seven files whose every metric value is worked out by hand in the tests below.

    A (Medicine, the leukemia article) links to B and C; A2 is a copy of A (Health
    Studies, no links); B2 is a copy of B (Psychology); N is no_index; E (Physics)
    links to F, and F repeats A's title and answer word for word. Vocabularies of
    A, B, C, E are disjoint, so TF-IDF cosines between them are 0.
    """
    root = tmp_path / "hand"
    a_text = ("What are the latest advancements in radiation therapy for leukemia?",
              r"Radiotherapy dosimetry leukaemia protocols.\n\n1. **Dosimetry** personalised.")
    write_article(root, "Medicine", LEUKEMIA, 1, *a_text, keywords="radiation, leukemia",
                  links=((2, "Medicine", "anxiety-coping"), (3, "Psychology", "grief-support")))
    write_article(root, "Health Studies", LEUKEMIA, 1, *a_text, keywords="radiation, leukemia")
    write_article(root, "Medicine", "anxiety-coping", 2, "Anxiety coping?",
                  "Worry families reassurance.", keywords="anxiety")
    write_article(root, "Psychology", "anxiety-coping", 2, "Anxiety coping?",
                  "Worry families reassurance.", keywords="anxiety")
    write_article(root, "Psychology", "grief-support", 3, "Grief support?",
                  "Bereavement counselling mourning.", keywords="grief")
    write_article(root, "Medicine", "declined", 9, "Declined question?",
                  "Cannot answer that.", no_index=True)
    write_article(root, "Physics", "quantum-tunnelling", 5, "Quantum tunnelling?",
                  "Barrier electrons wavefunction.", date="2024-12-01", keywords="quantum",
                  links=((6, "Physics", "radiation-copycat"),))
    write_article(root, "Physics", "radiation-copycat", 6, *a_text, date="2024-12-01",
                  keywords="radiation")
    return load_corpus(root)


TOPICS = {
    "Medicine": "tumour chemotherapy oncology leukemia radiation dosage clinical trial "
                "patients immunotherapy",
    "Physics": "quantum electron photon wavefunction energy momentum particle field "
               "relativity spin",
    "History": "empire revolution treaty dynasty colonial monarchy parliament war reform "
               "industrial",
    "Psychology": "anxiety memory cognition behaviour therapy emotion stress perception "
                  "motivation learning",
}


@pytest.fixture
def gen_corpus(tmp_path: Path) -> Corpus:
    """~50 articles, 4 subjects, 5 publication dates, links within a date and topic;
    with copies, a no_index article, undated articles and a dangling link."""
    root = tmp_path / "gen"
    rng = np.random.default_rng(7)
    dates = ["2024-11-21", "2024-11-23", "2024-11-25", "2025-01-28", "2025-01-31"]
    subjects = list(TOPICS)
    specs = []
    ident = 100
    for d, date in enumerate(dates):
        for j in range(10):
            subject = subjects[(d + j) % 4]
            words = TOPICS[subject].split()
            picked = rng.choice(words, 5, replace=False).tolist()
            noise = [f"w{int(x)}" for x in rng.integers(0, 60, 6)]
            specs.append({"subject": subject, "slug": f"{subject.lower()}-{d}-{j}",
                          "id": ident, "date": date,
                          "title": f"On {' '.join(picked[:2])} {j}?",
                          "answer": " ".join(picked + noise) + ".",
                          "keywords": ", ".join(picked[:3])})
            ident += 1
    by_date = defaultdict(list)
    for s in specs:
        by_date[s["date"]].append(s)
    for s in specs:
        same = [t for t in by_date[s["date"]] if t["subject"] == s["subject"] and t is not s]
        others = [t for t in by_date[s["date"]] if t["subject"] != s["subject"]]
        chosen = same[:2] + others[:1]
        s["links"] = tuple((t["id"], t["subject"], t["slug"]) for t in chosen)
    for d in range(len(dates)):  # a few links across batches, both ways between any two
        src, dst = specs[10 * d + 9], specs[10 * ((d + 1) % len(dates)) + 8]
        src["links"] += ((dst["id"], dst["subject"], dst["slug"]),)
    specs[3]["links"] += ((9999, "Medicine", "does-not-exist"),)  # dangling
    for s in specs:
        write_article(root, s["subject"], s["slug"], s["id"], s["title"], s["answer"],
                      s["date"], s["keywords"], s["links"])
    first = specs[0]  # a copy of the first article under another subject, same batch
    write_article(root, "Health Studies", first["slug"], first["id"], first["title"],
                  first["answer"], first["date"], first["keywords"], first["links"])
    write_article(root, "Medicine", "refusal", 5000, "Refused?", "I cannot help with that.",
                  dates[0], no_index=True)
    for j in range(2):  # undated, linking to each other
        other = f"undated-{1 - j}"
        write_article(root, "History", f"undated-{j}", 6000 + j, f"Undated empire {j}?",
                      "empire treaty dynasty reform.", None, "empire",
                      ((6000 + 1 - j, "History", other),))
    specs[5]["links"] += ((5000, "Medicine", "refusal"),)
    write_article(root, specs[5]["subject"], specs[5]["slug"], specs[5]["id"],
                  specs[5]["title"], specs[5]["answer"], specs[5]["date"], specs[5]["keywords"],
                  specs[5]["links"])
    return load_corpus(root)


def row(corpus: Corpus, subject: str, slug: str) -> int:
    return next(i for i, a in enumerate(corpus) if a.url == url_of(subject, slug))


class FixedMethod:
    """Returns hand-written rankings (article rows), for hand-computed metric values."""

    def __init__(self, lists: dict[int, list[int]], name: str = "fixed"):
        self.lists, self.name = lists, name

    def rank(self, queries: np.ndarray, n: int) -> list[list[int]]:
        return [self.lists.get(int(q), []) for q in queries]


# --------------------------------------------------------------------------- protocol


def test_protocol_queries_answers_and_collapsing(hand_corpus: Corpus) -> None:
    c = hand_corpus
    a, a2 = row(c, "Medicine", LEUKEMIA), row(c, "Health Studies", LEUKEMIA)
    b, b2 = row(c, "Medicine", "anxiety-coping"), row(c, "Psychology", "anxiety-coping")
    cc, n = row(c, "Psychology", "grief-support"), row(c, "Medicine", "declined")
    e, f = row(c, "Physics", "quantum-tunnelling"), row(c, "Physics", "radiation-copycat")
    p = build_protocol(c)
    assert p.queries.tolist() == sorted([a, e])  # only articles with curated links
    space = p.space
    answers = dict(zip(p.queries.tolist(), p.relevant, strict=True))
    assert set(answers[a].tolist()) == {space.content[b], space.content[cc]}
    assert space.content[b] == space.content[b2] and space.content[a] == space.content[a2]
    assert not space.candidate[n] and space.n_candidate_contents == 5
    # own copy, no_index, then B2 (first copy of B wins), B (same content), E, C, F
    assert space.collapse(a, [a2, n, b2, b, e, cc, f], 10) == [b2, e, cc, f]
    assert space.collapse(a, [a, a2, b], 10) == [b]
    assert space.collapse(a, [b2, b, e, cc], 2) == [b2, e]


def test_hand_corpus_metrics_known_in_advance(hand_corpus: Corpus) -> None:
    c = hand_corpus
    a, a2 = row(c, "Medicine", LEUKEMIA), row(c, "Health Studies", LEUKEMIA)
    b, b2 = row(c, "Medicine", "anxiety-coping"), row(c, "Psychology", "anxiety-coping")
    cc, n = row(c, "Psychology", "grief-support"), row(c, "Medicine", "declined")
    e, f = row(c, "Physics", "quantum-tunnelling"), row(c, "Physics", "radiation-copycat")
    method = FixedMethod({a: [a2, n, b2, b, e, cc, f], e: [e, a, n, f]})
    p = build_protocol(c)
    features = LexicalFeatures(c)
    result = evaluate(p, [method], (1, 3), features.tfidf)
    got = result.methods[0].metrics
    # A: collapsed [B2, E, C, F], answers {B, C} (R=2): hits at ranks 1 and 3
    # E: collapsed [A, F], answers {F} (R=1): hit at rank 2
    # @1   A: recall 1/2, precision 1, hit 1, ndcg 1, map 1/2, mrr 1;  E: all 0
    # @3   A: recall 1, precision 2/3, hit 1, ndcg (1 + 1/2) / (1 + 1/log2 3), map (1 + 2/3)/2,
    #         mrr 1
    #      E: recall 1, precision 1/3, hit 1, ndcg (1/log2 3) / 1, map 1/2, mrr 1/2
    ndcg_a = 1.5 / (1 + 1 / math.log2(3))
    expected = {
        "recall@1": 0.25, "precision@1": 0.5, "hit_rate@1": 0.5, "ndcg@1": 0.5,
        "map@1": 0.25, "mrr@1": 0.5,
        "recall@3": 1.0, "precision@3": 0.5, "hit_rate@3": 1.0,
        "ndcg@3": (ndcg_a + 1 / math.log2(3)) / 2, "map@3": (5 / 6 + 1 / 2) / 2, "mrr@3": 0.75,
        # 5 suggestible contents (A, B, C, E, F; N is no_index)
        # @1 shows B (A's list) and A (E's list); @3 shows B, E, C and A, F: all five
        "coverage@1": 2 / 5, "coverage@3": 1.0,
        # A (Medicine): B2 Psychology, E Physics, C Psychology -> 3/3; @1 B2 -> 1
        # E (Physics): A Medicine, F Physics -> 1/2; @1 A -> 1
        "cross_subject@1": 1.0, "cross_subject@3": 0.75,
        # A's top 3 (B, E, C) share no word: distance 1; E's list (A, F) is one text twice:
        # distance 0. @1 lists are single items: undefined
        "diversity@3": 0.5,
    }
    for name, value in expected.items():
        assert got[name] == pytest.approx(value), name
    assert math.isnan(got["diversity@1"])
    subjects = result.methods[0].per_subject
    assert subjects["Medicine"]["recall@1"] == pytest.approx(0.5)
    assert subjects["Physics"]["mrr@3"] == pytest.approx(0.5)
    assert subjects["Physics"]["queries"] == 1
    # recall@1..3: A 1/2, 1/2, 1; E 0, 1, 1
    assert result.methods[0].recall_curve[:3] == pytest.approx([0.25, 0.75, 1.0])


def test_queries_file_restricts_scoring_not_candidates(gen_corpus: Corpus,
                                                       tmp_path: Path) -> None:
    c = gen_corpus
    full = build_protocol(c)
    chosen = full.queries[::4].tolist()
    listed = tmp_path / "queries.txt"
    listed.write_text("# some queries\n" + "\n".join(
        c.articles[r].url if i % 2 else str(c.articles[r].path) for i, r in enumerate(chosen))
        + f"\n{c.articles[row(c, 'Medicine', 'refusal')].url}\n")  # no links: not scored
    rows = read_query_file(c, listed)
    part = build_protocol(c, rows)
    assert part.queries.tolist() == sorted(chosen)
    assert part.unscored == [url_of("Medicine", "refusal")]
    features = LexicalFeatures(c)
    method = TfidfMethod(features, c)
    whole = score_suggestions(full, "t", run_method(full, method, 20, None), [5], features.tfidf)
    some = score_suggestions(part, "t", run_method(part, method, 20, None), [5], features.tfidf)
    at = np.searchsorted(full.queries, part.queries)
    for name in ("recall@5", "ndcg@5", "cross_subject@5"):
        np.testing.assert_array_equal(some.per_query[name], whole.per_query[name][at])
    bad = tmp_path / "bad.txt"
    bad.write_text("/learn/nowhere/questions/nothing\n")
    with pytest.raises(ArticleNotFound):
        read_query_file(c, bad)


def test_targets_that_can_never_be_suggested_are_not_answers(gen_corpus: Corpus) -> None:
    p = build_protocol(gen_corpus)
    assert p.dropped_targets == 1  # the link to the no_index refusal
    refusal = p.space.content[row(gen_corpus, "Medicine", "refusal")]
    assert all(refusal not in r for r in p.relevant)


def test_max_queries_is_a_seeded_subset(gen_corpus: Corpus) -> None:
    full = build_protocol(gen_corpus)
    a, b = build_protocol(gen_corpus, max_queries=10, seed=3), build_protocol(
        gen_corpus, max_queries=10, seed=3)
    assert a.queries.tolist() == b.queries.tolist() and len(a.queries) == 10
    assert set(a.queries.tolist()) <= set(full.queries.tolist())


# --------------------------------------------------------------------------- folds and leakage


def test_folds_group_by_date_and_copies(gen_corpus: Corpus) -> None:
    c = gen_corpus
    folds = publication_folds(c, 3, seed=0)
    assert len(np.unique(folds)) == 3
    by_date = defaultdict(set)
    for i, a in enumerate(c):
        if a.date is not None:
            by_date[a.date].add(int(folds[i]))
    assert all(len(f) == 1 for f in by_date.values())  # a batch never straddles folds
    for group in c.by_id.values():  # copies share a fold
        assert len({int(folds[c.articles.index(a)]) for a in group}) == 1
    groups = publication_groups(c)
    undated = [i for i, a in enumerate(c) if a.date is None]
    assert len({int(groups[i]) for i in undated}) == len(undated)  # each undated one alone
    assert np.array_equal(folds, publication_folds(c, 3, seed=0))  # reproducible


def test_train_links_exclude_any_link_touching_a_test_article(gen_corpus: Corpus) -> None:
    c = gen_corpus
    folds = publication_folds(c, 3)
    test = np.flatnonzero(folds == 0)
    train = np.flatnonzero(folds != 0)
    pairs = {tuple(p) for p in links_between(c, train).tolist()}
    index = {a.url: i for i, a in enumerate(c)}
    everything = {(i, index[u]) for i, a in enumerate(c) for u in a.links}
    test_set = set(test.tolist())
    expected = {(s, t) for s, t in everything if s not in test_set and t not in test_set}
    assert pairs == expected and pairs
    assert not any(s in test_set or t in test_set for s, t in pairs)
    # links between a training and a test article exist in both directions and are dropped
    outgoing = {(s, t) for s, t in everything if s in test_set and t not in test_set}
    incoming = {(s, t) for s, t in everything if s not in test_set and t in test_set}
    assert outgoing and incoming and not ((outgoing | incoming) & pairs)


class Memoriser:
    """Ranks first whatever it saw linked to the query (both directions), then at random.

    The random tail depends only on (seed, query), so with no links seen it ranks
    exactly like its blind twin.
    """

    def __init__(self, n_rows: int, name: str = "memoriser", blind: bool = False):
        self.name, self.n_rows, self.blind = name, n_rows, blind
        self.out: dict[int, list[int]] = defaultdict(list)
        self.inc: dict[int, list[int]] = defaultdict(list)
        self.fits: list[np.ndarray] = []

    def fit(self, corpus: Corpus, train_rows: np.ndarray) -> None:
        self.fits.append(np.asarray(train_rows))
        self.out, self.inc = defaultdict(list), defaultdict(list)
        pairs = np.zeros((0, 2), dtype=np.int64) if self.blind else links_between(
            corpus, train_rows)
        for s, t in pairs.tolist():
            self.out[s].append(t)
            self.inc[t].append(s)

    def rank(self, queries: np.ndarray, n: int) -> list[list[int]]:
        lists = []
        for q in queries.tolist():
            tail = np.random.default_rng([11, q]).permutation(self.n_rows).tolist()
            lists.append(list(dict.fromkeys(self.out[q] + self.inc[q] + tail))[:n])
        return lists


def test_fitted_method_cannot_see_the_scored_articles_links(gen_corpus: Corpus) -> None:
    c = gen_corpus
    p = build_protocol(c)
    folds = publication_folds(c, 3, queries=p.queries)
    features = LexicalFeatures(c)

    def scores(method, folds_):
        lists = run_method(p, method, 10, folds_)
        return score_suggestions(p, method.name, lists, [5, 10], features.tfidf), lists

    leaky, _ = scores(Memoriser(len(c)), None)  # fitted on every link: perfect
    assert leaky.metrics["recall@10"] == pytest.approx(1.0)
    assert leaky.metrics["hit_rate@5"] == pytest.approx(1.0)

    memo = Memoriser(len(c))
    folded, lists = scores(memo, folds)
    blind, blind_lists = scores(Memoriser(len(c), "blind", blind=True), folds)
    assert lists == blind_lists  # it learned nothing usable about the articles it scored
    for name in folded.per_query:
        np.testing.assert_array_equal(folded.per_query[name], blind.per_query[name])
    chance = scores(RandomMethod(len(c)), None)[0]
    assert folded.metrics["recall@10"] < 0.5 < leaky.metrics["recall@10"]
    assert abs(folded.metrics["recall@10"] - chance.metrics["recall@10"]) < 0.2

    # one fit per fold, each on rows outside the fold, and its queries all inside the fold
    assert len(memo.fits) == len(np.unique(folds[p.queries]))
    for train_rows in memo.fits:
        assert len(np.unique(folds[train_rows])) == len(np.unique(folds)) - 1


def test_fold_runner_results_follow_the_query_order(gen_corpus: Corpus) -> None:
    c = gen_corpus
    p = build_protocol(c)
    folds = publication_folds(c, 3, queries=p.queries)
    memo = Memoriser(len(c), blind=True)
    plain = FixedMethod({int(q): memo.rank(np.array([q]), 60)[0] for q in p.queries})
    assert run_method(p, Memoriser(len(c), blind=True), 10, folds) == run_method(
        p, plain, 10, None)


# --------------------------------------------------------------------------- methods


def test_tie_breaks_are_seeded_random_not_file_order() -> None:
    zeros = np.zeros((2, 50))
    first = top_rows(zeros, 5, tie_breaker(50, 0))
    assert first[0].tolist() == first[1].tolist()
    assert first[0].tolist() != [0, 1, 2, 3, 4]
    assert top_rows(zeros, 5, tie_breaker(50, 1))[0].tolist() != first[0].tolist()
    scores = np.array([[0.0, 0.5, 0.5, 0.9, -np.inf]])
    best = top_rows(scores, 4, tie_breaker(5, 0))[0].tolist()
    assert best[0] == 3 and set(best[1:3]) == {1, 2} and best[3] == 0


def test_features_match_tfidf_vectorizer_and_bm25_matches_bm25s(gen_corpus: Corpus) -> None:
    c = gen_corpus
    features = LexicalFeatures(c)
    texts = [article_text(a, ("title", "answer")) for a in c]
    reference = TfidfVectorizer(sublinear_tf=True, stop_words="english").fit_transform(texts)
    assert abs(features.tfidf - reference).max() < 1e-12
    bm25 = BM25Method(features, c)
    rows = np.array([0, 7, 19])
    batch = (bm25.query_matrix(rows) @ bm25.term_doc).toarray()
    for i, r in enumerate(rows.tolist()):
        single = bm25.retriever.get_scores(bm25.query_terms(r).tolist())
        np.testing.assert_allclose(batch[i], single, rtol=1e-9, atol=1e-12)
    assert len(bm25.query_terms(0)) <= 25


def test_threaded_blocks_rank_like_one_block(gen_corpus: Corpus) -> None:
    c = gen_corpus
    features = LexicalFeatures(c)
    queries = np.arange(len(c))
    one = TfidfMethod(features, c)
    one.workers = 1
    many = TfidfMethod(features, c)
    many.workers, many.block = 2, 7
    assert many.rank(queries, 12) == one.rank(queries, 12)


@pytest.mark.parametrize("name", ["random", "tfidf", "bm25", "keywords"])
def test_methods_never_return_no_index_or_self(gen_corpus: Corpus, name: str) -> None:
    c = gen_corpus
    features = LexicalFeatures(c)
    method = {"random": lambda: RandomMethod(len(c)), "tfidf": lambda: TfidfMethod(features, c),
              "bm25": lambda: BM25Method(features, c), "keywords": lambda: KeywordMethod(c)}[name]()
    p = build_protocol(c)
    refusal = row(c, "Medicine", "refusal")
    for q, items in zip(p.queries.tolist(), run_method(p, method, 10, None), strict=True):
        assert len(items) == 10
        assert refusal not in items and q not in items
        contents = [int(p.space.content[i]) for i in items]
        assert len(set(contents)) == 10 and p.space.content[q] not in contents


def test_exported_suggestions_score_exactly_like_the_method(gen_corpus: Corpus,
                                                            tmp_path: Path) -> None:
    c = gen_corpus
    features = LexicalFeatures(c)
    p = build_protocol(c)
    for method in (TfidfMethod(features, c), BM25Method(features, c), KeywordMethod(c),
                   RandomMethod(len(c))):
        path = tmp_path / f"{method.name}.jsonl"
        assert export_suggestions(p.space, method, 10, path) == len(c)
        lines = [json.loads(x) for x in path.read_text().splitlines()]
        assert all(len(x["suggestions"]) == 10 for x in lines)
        in_process = evaluate(p, [method], (5, 10), features.tfidf).methods[0]
        from_file = evaluate(p, [SuggestionsFile(c, path)], (5, 10), features.tfidf).methods[0]
        for name, values in in_process.per_query.items():
            np.testing.assert_array_equal(values, from_file.per_query[name], err_msg=name)
        for name in ("coverage@5", "coverage@10"):
            assert in_process.metrics[name] == from_file.metrics[name]
        assert in_process.recall_curve[:10] == from_file.recall_curve[:10]


def test_suggestions_file_errors(gen_corpus: Corpus, tmp_path: Path) -> None:
    c = gen_corpus
    path = tmp_path / "s.jsonl"
    path.write_text(json.dumps({"url": c.articles[0].url, "suggestions": ["/learn/x/y"]}) + "\n")
    with pytest.raises(ArticleNotFound):
        SuggestionsFile(c, path)
    path.write_text("{not json\n")
    with pytest.raises(SuggestionsFileError):
        SuggestionsFile(c, path)
    line = json.dumps({"url": c.articles[0].url, "suggestions": []})
    path.write_text(f"{line}\n{line}\n")
    with pytest.raises(SuggestionsFileError):
        SuggestionsFile(c, path)


# --------------------------------------------------------------------------- report and CLI


def test_report_has_plots_examples_and_fingerprint(hand_corpus: Corpus, tmp_path: Path) -> None:
    c = hand_corpus
    features = LexicalFeatures(c)
    p = build_protocol(c)
    methods = [TfidfMethod(features, c), RandomMethod(len(c))]
    a = row(c, "Medicine", LEUKEMIA)
    result = evaluate(p, methods, (1, 3), features.tfidf, reference="tfidf", n_resamples=100,
                      examples=[a])
    data = results_dict(result)
    assert data["examples"][0]["url"] == url_of("Medicine", LEUKEMIA)
    assert {x["relevant"] for x in data["examples"][0]["curated"]} == {True}
    assert set(data["examples"][0]["suggestions"]) == {"tfidf", "random"}
    assert [i["method"] for i in data["bootstrap"]] and all(
        i["reference"] == "tfidf" for i in data["bootstrap"])
    html = write_html(result, tmp_path / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 2
    assert "What are the latest advancements in radiation therapy for leukemia?" in html
    assert result.fingerprint in html


@pytest.fixture
def cli():
    import recommender.cli.evaluate  # noqa: F401  (registers the commands)
    from recommender.cli import app

    runner = CliRunner()
    return lambda *args: runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def test_cli_suggest_then_evaluate_file_equals_in_process(gen_corpus: Corpus, tmp_path: Path,
                                                          cli) -> None:
    root = gen_corpus.root
    exported = tmp_path / "tfidf.jsonl"
    done = cli("suggest", root, "--all", "--output", exported, "--method", "tfidf", "--k", 10)
    assert done.exit_code == 0, done.output
    assert len(exported.read_text().splitlines()) == len(gen_corpus)
    out = tmp_path / "eval"
    done = cli("evaluate", root, "--methods", "random,tfidf,bm25,keywords", "--suggestions",
               exported, "--output", out, "--k", 5, "--k", 10, "--resamples", 200)
    assert done.exit_code == 0, done.output
    data = json.loads((out / "results.json").read_text())
    assert (out / "report.html").exists()
    ours, theirs = data["methods"]["tfidf"]["metrics"], data["methods"]["file:tfidf"]["metrics"]
    assert ours == theirs
    assert data["corpus"]["queries"] == len(build_protocol(gen_corpus).queries)
    assert "recall@5" in data["methods"]["bm25"]["metrics"]
    assert "tfidf" in done.output and "file:tfidf" in done.output


def test_cli_dense_variant_and_bad_options(gen_corpus: Corpus, tmp_path: Path, cli) -> None:
    config = tmp_path / "hashing.yaml"
    config.write_text("model: hashing\n")
    out = tmp_path / "dense"
    done = cli("evaluate", gen_corpus.root, "--methods", "tfidf,dense", "--dense", config,
               "--output", out, "--cache-dir", tmp_path / "cache", "--resamples", 100)
    assert done.exit_code == 0, done.output
    data = json.loads((out / "results.json").read_text())
    assert set(data["methods"]) == {"tfidf", "dense:hashing"}
    assert cli("evaluate", gen_corpus.root, "--methods", "nope", "--output", out).exit_code == 2
    frontier = Path(__file__).resolve().parents[1] / "results" / "quality_frontier.png"
    done = cli("evaluate", gen_corpus.root, "--methods", "tfidf", "--output", out,
               "--frontier", frontier, "--resamples", 100)
    assert done.exit_code == 0, done.output
    assert "<h2>Quality frontier</h2>" in (out / "report.html").read_text()
    assert cli("suggest", gen_corpus.root, "--output", tmp_path / "x.jsonl").exit_code == 2


@pytest.mark.parametrize("n_rows", [50, 20000])
def test_random_rankings_are_prefix_consistent_and_batch_independent(n_rows: int) -> None:
    method = RandomMethod(n_rows, seed=4)
    queries = np.array([3, 9, 27])
    deep, shallow = method.rank(queries, 40), method.rank(queries, 12)
    assert [d[:12] for d in deep] == shallow
    assert method.rank(queries[1:], 12) == shallow[1:]
    assert all(len(set(d)) == 40 for d in deep)
    assert RandomMethod(n_rows, seed=5).rank(queries, 12) != shallow
