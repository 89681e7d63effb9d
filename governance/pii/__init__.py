"""PII detection: one pattern table, the Presidio engine, the streaming scanner, text units.

- :mod:`.patterns`: the regex recognisers (with their validate hooks: Luhn, SSN rules, ...)
  that the scanner, the extraction probe and report re-masking all use;
- :mod:`.engine`: the offline Presidio analyzer (heavy: imports presidio);
- :mod:`.scan`: streaming, parallel scans and the summary written into dataset evidence;
- :mod:`.prefilter`, :mod:`.names`, :mod:`.addresses`: the pre-filter and the extra recognisers;
- :mod:`.texts`: which strings of a record are scanned, and putting sanitised strings back;
- :mod:`.config`: :class:`ScanConfig`.

Light at import: presidio is imported only by a scan.
"""
