"""Knowledge-base fixtures: a tiny random sentence-transformers embedder and cross-encoder
(built in a second, deterministic, never downloaded) and a real PostgreSQL + pgvector server."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

VOCAB_CORPUS = [
    "The refund window is 45 days. Acme Corp sells rockets, anvils and portable holes.",
    "Shipping takes three business days; express shipping costs extra.",
    "Our office is in Springfield. Support answers email within one day.",
    "Warranty covers manufacturing defects for two years from the purchase date.",
    "Pricing tiers: basic, professional and enterprise plans are billed monthly.",
    "0123456789 abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ .,;:!?'\"()[]{}-_/#*|>",
]


def _tiny_tokenizer():
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertTokenizerFast

    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    backend = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.train_from_iterator(
        VOCAB_CORPUS * 10,
        trainer=trainers.WordPieceTrainer(
            vocab_size=300, special_tokens=special, show_progress=False
        ),
    )
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[
            ("[CLS]", backend.token_to_id("[CLS]")),
            ("[SEP]", backend.token_to_id("[SEP]")),
        ],
    )
    return BertTokenizerFast(
        tokenizer_object=backend,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )


def _tiny_bert_config(vocab_size: int, **extra):
    from transformers import BertConfig

    return BertConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
        **extra,
    )


def build_tiny_embedder(path: Path) -> Path:
    """Save a 32-dim random BERT + mean pooling as a sentence-transformers folder."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer import modules as models
    from transformers import BertModel

    torch.manual_seed(0)
    tokenizer = _tiny_tokenizer()
    bert_dir = path / "bert"
    BertModel(_tiny_bert_config(len(tokenizer))).save_pretrained(bert_dir)
    tokenizer.save_pretrained(bert_dir)
    transformer = models.Transformer(str(bert_dir), max_seq_length=256)
    pooling = models.Pooling(transformer.get_embedding_dimension(), pooling_mode="mean")
    SentenceTransformer(modules=[transformer, pooling], device="cpu").save(str(path / "st"))
    return path / "st"


def build_tiny_cross_encoder(path: Path) -> Path:
    """Save a random one-label BERT classifier: a CrossEncoder folder."""
    import torch
    from transformers import BertForSequenceClassification

    torch.manual_seed(1)
    tokenizer = _tiny_tokenizer()
    BertForSequenceClassification(_tiny_bert_config(len(tokenizer), num_labels=1)).save_pretrained(
        path
    )
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_embedder_dir(tmp_path_factory) -> Path:
    return build_tiny_embedder(tmp_path_factory.mktemp("tiny-embedder"))


@pytest.fixture(scope="session")
def tiny_embedder(tiny_embedder_dir):
    from infuse.knowledge.embeddings import Embedder

    return Embedder(str(tiny_embedder_dir), device="cpu")


@pytest.fixture(scope="session")
def tiny_reranker_dir(tmp_path_factory) -> Path:
    return build_tiny_cross_encoder(tmp_path_factory.mktemp("tiny-reranker"))


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory):
    """A real PostgreSQL 16 server with pgvector (the `pgserver` package), for the whole session."""
    pgserver = pytest.importorskip("pgserver")
    server = pgserver.get_server(tmp_path_factory.mktemp("pg") / "data", cleanup_mode="stop")
    yield server
    server.cleanup()


@pytest.fixture
def pg_url(pg_server) -> str:
    """A fresh, empty database on the session server; its URL."""
    import psycopg

    name = f"kb_{uuid.uuid4().hex[:10]}"
    base = pg_server.get_uri()
    with psycopg.connect(base, autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {name}")
    return pg_server.get_uri(database=name)


@pytest.fixture(params=["lance", pytest.param("postgres", marks=pytest.mark.slow)])
def store_location(request, tmp_path) -> str:
    """The same store tests run against both backends: a LanceDB folder and a PostgreSQL URL."""
    if request.param == "lance":
        return str(tmp_path / "kb")
    return request.getfixturevalue("pg_url")
