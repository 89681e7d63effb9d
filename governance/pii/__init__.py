"""PII detection: one pattern table, the Presidio engine, the streaming scanner, text units.

- :mod:`.patterns`: the regex recognisers (with their validate hooks: Luhn, SSN rules, ...)
  that the scanner, the extraction probe and report re-masking all use;
- :mod:`.engine`: the offline Presidio analyzer (heavy: imports presidio);
- :mod:`.scan`: streaming, parallel scans and the summary written into dataset evidence;
- :mod:`.prefilter`, :mod:`.names`, :mod:`.addresses`: the pre-filter and the extra recognisers;
- :mod:`.texts`: which strings of a record are scanned, and putting sanitised strings back;
- :mod:`.config`: :class:`ScanConfig`;
- :mod:`.ner`: the NER model (a spaCy pipeline, never downloaded) and its exact description;
- :mod:`.evaluate`, :mod:`.accuracy`: the labelled evaluation set, and the measured precision
  and recall per engine configuration that scans copy into the evidence.

Light at import: presidio is imported only by a scan.
"""
