"""Parsing what the kernel writes: smaps/maps blocks (`fields`, `run`, `locate`) and stat/status
(`status`). Pure: bytes in, values out; no file is opened here.
"""
