"""Enrichment of posts: sentiment scoring (VADER plus domain lexicon packs)."""
