"""Calico's selector language: tokenizer, parser, evaluation and canonical form."""
