"""US street addresses: a pattern recogniser Presidio does not ship.

Presidio's predefined recognisers cover UK, Canadian and German postcodes but no street address,
and its ``LOCATION`` entity needs a spaCy model (which finetrail never downloads). Without this, a
support note's "my new address is 25411 Wright Glen, Benjaminborough, UT 53945" passes a scan
clean and survives sanitising.

The pattern: a house number, one to three words, and a street suffix from USPS Publication 28
(Appendix C1: the primary suffix names and their standard abbreviations), then optionally a unit
("Apt. 065", "Suite 377", "Unit 4", "# 12") and ", City, ST 12345[-6789]"; and US military mail
("PSC 4115, Box 7815, APO AA 41945", "USNS Stewart, FPO AE 31520"). This module imports only
:mod:`re`; the entries of :mod:`.patterns` (the one PII table) are built from it.
"""

from __future__ import annotations

import re

ENTITY = "STREET_ADDRESS"

# USPS Publication 28, Appendix C1: primary street suffix names and standard abbreviations.
_USPS_C1 = """
    Alley Aly Anex Anx Arcade Arc Avenue Ave Av Bayou Byu Beach Bch Bend Bnd Bluff Blf Bluffs Blfs
    Bottom Btm Boulevard Blvd Branch Br Bridge Brg Brook Brk Brooks Brks Burg Bg Burgs Bgs Bypass
    Byp Camp Cp Canyon Cyn Cape Cpe Causeway Cswy Center Ctr Centers Ctrs Circle Cir Circles Cirs
    Cliff Clf Cliffs Clfs Club Clb Common Cmn Commons Cmns Corner Cor Corners Cors Course Crse
    Court Ct Courts Cts Cove Cv Coves Cvs Creek Crk Crescent Cres Crest Crst Crossing Xing
    Crossroad Xrd Crossroads Xrds Curve Curv Dale Dl Dam Dm Divide Dv Drive Dr Drives Drs Estate
    Est Estates Ests Expressway Expy Extension Ext Extensions Exts Fall Falls Fls Ferry Fry Field
    Fld Fields Flds Flat Flt Flats Flts Ford Frd Fords Frds Forest Frst Forge Frg Forges Frgs Fork
    Frk Forks Frks Fort Ft Freeway Fwy Garden Gdn Gardens Gdns Gateway Gtwy Glen Gln Glens Glns
    Green Grn Greens Grns Grove Grv Groves Grvs Harbor Hbr Harbors Hbrs Haven Hvn Heights Hts
    Highway Hwy Hill Hl Hills Hls Hollow Holw Inlet Inlt Island Is Islands Iss Isle Junction Jct
    Junctions Jcts Key Ky Keys Kys Knoll Knl Knolls Knls Lake Lk Lakes Lks Land Landing Lndg Lane
    Ln Light Lgt Lights Lgts Loaf Lf Lock Lck Locks Lcks Lodge Ldg Loop Mall Manor Mnr Manors Mnrs
    Meadow Mdw Meadows Mdws Mews Mill Ml Mills Mls Mission Msn Motorway Mtwy Mount Mt Mountain Mtn
    Mountains Mtns Neck Nck Orchard Orch Oval Overpass Opas Park Prk Parks Parkway Pkwy Parkways
    Pkwys Pass Passage Psge Path Pike Pine Pne Pines Pnes Place Pl Plain Pln Plains Plns Plaza Plz
    Point Pt Points Pts Port Prt Ports Prts Prairie Pr Radial Radl Ramp Ranch Rnch Rapid Rpd
    Rapids Rpds Rest Rst Ridge Rdg Ridges Rdgs River Riv Road Rd Roads Rds Route Rte Row Rue Run
    Shoal Shl Shoals Shls Shore Shr Shores Shrs Skyway Skwy Spring Spg Springs Spgs Spur Spurs
    Square Sq Squares Sqs Station Sta Stravenue Stra Stream Strm Street St Streets Sts Summit Smt
    Terrace Ter Throughway Trwy Trace Trce Track Trak Trafficway Trfy Trail Trl Trailer Trlr
    Tunnel Tunl Turnpike Tpke Underpass Upas Union Un Unions Uns Valley Vly Valleys Vlys Via
    Viaduct Vdct View Vw Views Vws Village Vlg Villages Vlgs Ville Vl Vista Vis Walk Walks Wall
    Way Ways Well Wl Wells Wls
"""
USPS_SUFFIXES: tuple[str, ...] = tuple(_USPS_C1.split())

_SUFFIX = "|".join(sorted(set(USPS_SUFFIXES), key=len, reverse=True))
_WORD = r"(?:[A-Z][A-Za-z'\-]*|\d{1,3}(?:st|nd|rd|th)|[NSEW]\.?)"
STREET = (
    rf"(?<![\w.,/-])\d{{1,6}}(?:\s+{_WORD}){{1,3}}\s+(?:{_SUFFIX})\b\.?"
    r"(?:\s+(?:NE|NW|SE|SW|N|S|E|W)\b\.?)?"
)
UNIT = r"(?:,?\s+(?:(?:Apt|Apartment|Suite|Ste|Unit|Box)\b\.?|#)\s*[A-Za-z0-9\-]{1,8}\b)?"
CITY_STATE_ZIP = (
    r",?\s+[A-Z][A-Za-z'\-]*(?:\s+[A-Z][A-Za-z'\-]*){0,3},\s+[A-Z]{2}\s+\d{5}(?:-\d{4})?\b"
)
# US military mail (USPS Publication 28, 2.7): "PSC 4115, Box 7815, APO AA 41945",
# "Unit 4711 Box 2201, DPO AP 71358", "USNS Stewart, FPO AE 31520".
MILITARY = (
    r"\b(?:(?:PSC|CMR|Unit)\s+\d{1,5},?\s+Box\s+\d{1,5}|(?:USNS|USNV|USS|USCGC)\s+[A-Z][A-Za-z'\-]*)"
    r",?\s+[ADF]PO\s+A[AEP]\s+\d{5}(?:-\d{4})?\b"
)
STREET_ADDRESS = rf"{STREET}{UNIT}(?:{CITY_STATE_ZIP})?|{MILITARY}"
# Case matters (capitalised street names, two-letter state codes): no IGNORECASE, unlike
# Presidio's default flags, or "3 cats in the park" would be an address.
FLAGS = re.DOTALL | re.MULTILINE
STREET_ADDRESS_RE = re.compile(STREET_ADDRESS, FLAGS)

CONTEXT: tuple[str, ...] = (
    "address",
    "live",
    "lives",
    "living",
    "moved",
    "street",
    "billing",
    "shipping",
    "mailing",
    "deliver",
    "residence",
)
