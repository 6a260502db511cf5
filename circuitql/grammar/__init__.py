"""The query language's syntax: text -> AST (``parser``), AST -> text (``printer``), the AST
as JSON for the cache (``ast_json``), and the token language of signatures (``token_parser``).
"""
