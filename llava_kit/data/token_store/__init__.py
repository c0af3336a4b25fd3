"""The token store: a stage's data tokenized once into flat memory-mapped columns, shared by
every rank, loader worker, stage, later run and grid cell that asks for the same tokens."""

from llava_kit.data.token_store.cache import StoreRequest, default_root, open_token_store
from llava_kit.data.token_store.store import StoreRows, TokenStore

__all__ = ["StoreRequest", "StoreRows", "TokenStore", "default_root", "open_token_store"]
