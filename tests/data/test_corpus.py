"""Corpus readers: WikiExtractor dump, plain text, WikiText, HF datasets — streamed, with errors naming file:line."""

import pytest

from bertbench.data.corpus import iter_hf_text, iter_text_files, iter_wikiextractor, iter_wikitext, open_corpus
from bertbench.data.examples import DataError

WIKI = """<doc id="1" url="?curid=1" title="Stub">
Stub

</doc>
<doc id="2" url="?curid=2" title="Ada Lovelace">
Ada Lovelace

Ada Lovelace was a mathematician.
Early life.
She was born in London.
</doc>
"""


def test_wikiextractor_drops_stub_documents_and_title_lines(tmp_path):
    path = tmp_path / "wiki_00"
    path.write_text(WIKI)
    docs = list(iter_wikiextractor([path]))
    assert docs == ["Ada Lovelace was a mathematician.\nEarly life.\nShe was born in London."]


def test_wikiextractor_errors_name_file_and_line(tmp_path):
    stray = tmp_path / "stray"
    stray.write_text(WIKI + "loose text\n")
    with pytest.raises(DataError, match=r"stray:12: text outside a <doc>"):
        list(iter_wikiextractor([stray]))
    truncated = tmp_path / "truncated"
    truncated.write_text(WIKI.rsplit("</doc>", 1)[0])
    with pytest.raises(DataError, match=r"truncated: the <doc> opened on line 5 is never closed"):
        list(iter_wikiextractor([truncated]))


def test_readers_stream_one_document_at_a_time(tmp_path):
    """The first document arrives before later files are even opened: a corpus larger than memory works."""
    first = tmp_path / "wiki_00"
    first.write_text(WIKI)
    documents = iter_wikiextractor([first, tmp_path / "does_not_exist"])
    assert next(documents).startswith("Ada Lovelace")
    with pytest.raises(FileNotFoundError):
        next(documents)


def test_text_files_split_documents_on_blank_lines(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("first doc line one\nline two\n\n\nsecond doc\n")
    assert list(iter_text_files([path])) == ["first doc line one\nline two", "second doc"]


def test_wikitext_undoes_escapes_and_drops_headings_and_unk(tmp_path):
    path = tmp_path / "valid.txt"
    path.write_text(" \n = Lobster = \n \n A well @-@ known <unk> , 1 @,@ 000 and 2 @.@ 5 cm . \n"
                    " \n = = Biology = = \n \n It lives . \n = Crab = \n Crabs walk . \n")
    assert list(iter_wikitext(path)) == ["A well-known , 1,000 and 2.5 cm .\nIt lives .", "Crabs walk ."]


def test_hf_dataset_column():
    from datasets import Dataset

    dataset = Dataset.from_dict({"text": ["one", "  ", "two"], "id": [1, 2, 3]})
    assert list(iter_hf_text(dataset, "text")) == ["one", "two"]
    with pytest.raises(DataError, match="no column 'body'"):
        list(iter_hf_text(dataset, "body"))


def test_open_corpus_detects_format_and_limits_documents(tmp_path):
    (tmp_path / "dump").mkdir()
    (tmp_path / "dump" / "wiki_00").write_text(WIKI * 3)
    assert len(list(open_corpus(str(tmp_path / "dump")))) == 3
    assert len(list(open_corpus(str(tmp_path / "dump"), max_docs=2))) == 2
    (tmp_path / "plain.txt").write_text("a\n\nb\n")
    assert list(open_corpus(str(tmp_path / "plain.txt"))) == ["a", "b"]
    with pytest.raises(DataError, match="nor an existing path"):
        open_corpus(str(tmp_path / "missing"))
    with pytest.raises(DataError, match="expected hf:"):
        open_corpus("hf:only-a-name")


def test_shared_wikipedia_dump_reads_as_documented():
    corpus = open_corpus("wikipedia", max_docs=50)
    docs = list(corpus)
    if not docs:
        pytest.skip("no Wikipedia dump")
    assert len(docs) == 50 and all(doc.strip() for doc in docs)
    assert not any(doc.startswith("<doc") for doc in docs)
