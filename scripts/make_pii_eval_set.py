"""Regenerate governance/pii/data/pii_eval.jsonl: a labelled PII evaluation set (dev time only).

Why a separate set: the demo data (``finetrail.training._synth_records``) is drawn from Faker's
``en_US`` person, address and card providers with a dozen fixed templates, and the PERSON
recogniser's deny-list is built from the same Faker name lists. Scoring the scanner on that data
measures how well it recognises its own generator. This script shares nothing with it: every
source list below (names from many cultures, US cities and streets, e-mail domains, phone number
formats of six countries, card IIN ranges, IBAN layouts of fourteen countries) is written out
here by hand, the templates are different (support tickets, e-mails, chat, clinical-style notes,
forms, logs, shipping labels, CRM notes; some lower-case, some not in English), and many records
carry hard negatives: order, invoice and tracking numbers, 16-digit numbers that fail Luhn, ISBNs,
version strings, timestamps, prices, product codes, bare ZIP codes, phone-shaped serial numbers,
SSN-shaped lot numbers with an invalid area, and common words that are also first names.

Labels use Presidio's entity names (PERSON, EMAIL_ADDRESS, PHONE_NUMBER, CREDIT_CARD, US_SSN,
IBAN_CODE, IP_ADDRESS, URL) and finetrail's STREET_ADDRESS (a US street address with any unit,
city, state and ZIP that follow it). DATE_TIME is not labelled. A PERSON span is the name only,
without a title ("Dr." stays outside). Every card number passes Luhn, every IBAN passes mod 97
(and the national check digits of FR, ES, BE, PL, PT, FI and NO), every SSN has a valid area,
group and serial, and every phone number is a valid number of its country.

No Faker, no network: one seeded ``random.Random``, so the output is a pure function of this file
and the seed. Usage: ``python scripts/make_pii_eval_set.py [--out PATH]``.
"""

from __future__ import annotations

import argparse
import ipaddress
import itertools
import json
import random
import re
import sys
import unicodedata
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

SEED = 20_250_611
RECORDS = 800
OUT = Path(__file__).resolve().parent.parent / "governance" / "pii" / "data" / "pii_eval.jsonl"

# ---------------------------------------------------------------------------------------------
# Names: (given, family, order, call name). order "gf" = given name first, "fg" = family name
# first in the culture's own order; "mono" = a single name. The call name is what a colleague
# would write on its own ("Hi Mai"). None of these tokens is in Faker's en_US name lists, even
# with accents removed (tests/governance/pii/test_eval_set.py checks).
# ---------------------------------------------------------------------------------------------
NAMES: tuple[tuple[str, str, str, str], ...] = (
    # Nigerian (Igbo, Yoruba, Hausa)
    ("Chukwuemeka", "Okonkwo", "gf", "Chukwuemeka"),
    ("Adaeze", "Nwosu", "gf", "Adaeze"),
    ("Oluwaseun", "Adeyemi", "gf", "Oluwaseun"),
    ("Ngozi", "Eze", "gf", "Ngozi"),
    ("Babatunde", "Ogunleye", "gf", "Babatunde"),
    ("Funmilayo", "Adebayo", "gf", "Funmilayo"),
    ("Ifeanyi", "Obi", "gf", "Ifeanyi"),
    ("Yetunde", "Bakare", "gf", "Yetunde"),
    ("Temitope", "Oladipo", "gf", "Temitope"),
    ("Aminu", "Bello", "gf", "Aminu"),
    ("Zainab", "Abubakar", "gf", "Zainab"),
    ("Chiamaka", "Okafor", "gf", "Chiamaka"),
    ("Obinna", "Nwachukwu", "gf", "Obinna"),
    ("Folake", "Akinwale", "gf", "Folake"),
    ("Nkechi", "Umeh", "gf", "Nkechi"),
    ("Kelechi", "Anyanwu", "gf", "Kelechi"),
    ("Ngozi", "Eze-Okafor", "gf", "Ngozi"),
    # Vietnamese
    ("Thị Mai", "Hoàng", "fg", "Mai"),
    ("Minh Khoa", "Đặng", "fg", "Khoa"),
    ("Thu Trang", "Bùi", "fg", "Trang"),
    ("Quang Huy", "Đỗ", "fg", "Huy"),
    ("Ngọc Anh", "Vũ", "fg", "Ngọc Anh"),
    ("Văn Thắng", "Ngô", "fg", "Thắng"),
    ("Thanh Hương", "Dương", "fg", "Hương"),
    ("Hữu Phước", "Tạ", "fg", "Phước"),
    ("Bảo Châu", "Lý", "fg", "Châu"),
    ("Đức Toàn", "Phan", "fg", "Toàn"),
    ("Thị Lan", "Trịnh", "fg", "Lan"),
    # Chinese (pinyin; Hong Kong and Taiwan romanisations)
    ("Jiahui", "Zhou", "fg", "Jiahui"),
    ("Meiling", "Zhao", "fg", "Meiling"),
    ("Wenjing", "Xu", "fg", "Wenjing"),
    ("Zihan", "Sun", "fg", "Zihan"),
    ("Lihua", "Guo", "fg", "Lihua"),
    ("Yifan", "He", "fg", "Yifan"),
    ("Shuang", "Gao", "fg", "Shuang"),
    ("Tianyu", "Luo", "fg", "Tianyu"),
    ("Xinyi", "Zheng", "fg", "Xinyi"),
    ("Qiang", "Deng", "fg", "Qiang"),
    ("Ruoxi", "Xie", "fg", "Ruoxi"),
    ("Zhiwei", "Feng", "fg", "Zhiwei"),
    ("Haoran", "Tang", "fg", "Haoran"),
    ("Xiaoming", "Cao", "fg", "Xiaoming"),
    ("Ka-wai", "Cheung", "gf", "Ka-wai"),
    ("Siu-ming", "Leung", "gf", "Siu-ming"),
    ("Pei-shan", "Tsai", "gf", "Pei-shan"),
    ("Chia-hao", "Hsu", "gf", "Chia-hao"),
    # Indian
    ("Priya", "Venkataraman", "gf", "Priya"),
    ("Rahul", "Iyer", "gf", "Rahul"),
    ("Ananya", "Krishnamurthy", "gf", "Ananya"),
    ("Vikram", "Reddy", "gf", "Vikram"),
    ("Lakshmi", "Subramanian", "gf", "Lakshmi"),
    ("Arjun", "Mehta", "gf", "Arjun"),
    ("Deepika", "Choudhury", "gf", "Deepika"),
    ("Sanjay", "Gupta", "gf", "Sanjay"),
    ("Kavya", "Nair", "gf", "Kavya"),
    ("Rohan", "Deshpande", "gf", "Rohan"),
    ("Meenakshi", "Pillai", "gf", "Meenakshi"),
    ("Harpreet", "Kaur", "gf", "Harpreet"),
    ("Aditi", "Banerjee", "gf", "Aditi"),
    ("Siddharth", "Chatterjee", "gf", "Siddharth"),
    ("Nandini", "Raghavan", "gf", "Nandini"),
    ("Karthik", "Sundaram", "gf", "Karthik"),
    ("Aishwarya", "Kulkarni", "gf", "Aishwarya"),
    ("Gurpreet", "Sandhu", "gf", "Gurpreet"),
    # Arabic
    ("Mohammed", "Al-Farsi", "gf", "Mohammed"),
    ("Fatima", "Al-Zahrani", "gf", "Fatima"),
    ("Yusuf", "Haddad", "gf", "Yusuf"),
    ("Layla", "Nasser", "gf", "Layla"),
    ("Khalid", "Al-Rashid", "gf", "Khalid"),
    ("Noor", "Abdelrahman", "gf", "Noor"),
    ("Hassan", "Abdallah", "gf", "Hassan"),
    ("Aisha", "El-Amin", "gf", "Aisha"),
    ("Tariq", "Mansour", "gf", "Tariq"),
    ("Rania", "Khoury", "gf", "Rania"),
    ("Samir", "Barakat", "gf", "Samir"),
    ("Ibrahim", "El-Sayed", "gf", "Ibrahim"),
    ("Mariam", "Qasim", "gf", "Mariam"),
    ("Abdulaziz", "Al-Otaibi", "gf", "Abdulaziz"),
    ("Hind", "Bensaid", "gf", "Hind"),
    ("Youssef", "Benali", "gf", "Youssef"),
    ("Salma", "Tawfiq", "gf", "Salma"),
    # Polish
    ("Małgorzata", "Wiśniewska", "gf", "Małgorzata"),
    ("Krzysztof", "Wójcik", "gf", "Krzysztof"),
    ("Agnieszka", "Kowalczyk", "gf", "Agnieszka"),
    ("Paweł", "Zieliński", "gf", "Paweł"),
    ("Zofia", "Szymańska", "gf", "Zofia"),
    ("Grzegorz", "Woźniak", "gf", "Grzegorz"),
    ("Katarzyna", "Dąbrowska", "gf", "Katarzyna"),
    ("Tomasz", "Kamiński", "gf", "Tomasz"),
    ("Łukasz", "Lewandowski", "gf", "Łukasz"),
    ("Bożena", "Jankowska", "gf", "Bożena"),
    ("Piotr", "Nowak", "gf", "Piotr"),
    ("Bartosz", "Grabowski", "gf", "Bartosz"),
    ("Magdalena", "Wróbel", "gf", "Magdalena"),
    ("Jędrzej", "Pawlak", "gf", "Jędrzej"),
    ("Zofia", "Nowak-Jeziorańska", "gf", "Zofia"),
    # Brazilian
    ("João Vitor", "Cavalcanti", "gf", "João Vitor"),
    ("Thiago", "Gonçalves", "gf", "Thiago"),
    ("Larissa", "Araújo", "gf", "Larissa"),
    ("Rafaela", "Barbosa", "gf", "Rafaela"),
    ("Vinícius", "Ribeiro", "gf", "Vinícius"),
    ("Luiz Henrique", "Carvalho", "gf", "Luiz Henrique"),
    ("Letícia", "Moreira", "gf", "Letícia"),
    ("Bruna", "Teixeira", "gf", "Bruna"),
    ("Caio", "Nascimento", "gf", "Caio"),
    ("Guilherme", "Fagundes", "gf", "Guilherme"),
    ("Isadora", "Quintela", "gf", "Isadora"),
    ("Mateus", "Albuquerque", "gf", "Mateus"),
    ("Raíssa", "Fonseca", "gf", "Raíssa"),
    ("Thaís", "Medeiros", "gf", "Thaís"),
    ("Renan", "Bittencourt", "gf", "Renan"),
    # Korean
    ("Min-jun", "Baek", "fg", "Min-jun"),
    ("Seo-yeon", "Jung", "fg", "Seo-yeon"),
    ("Ji-hoon", "Kang", "fg", "Ji-hoon"),
    ("Ha-eun", "Yoon", "fg", "Ha-eun"),
    ("Do-yoon", "Jang", "fg", "Do-yoon"),
    ("Su-bin", "Lim", "fg", "Su-bin"),
    ("Jae-won", "Hwang", "fg", "Jae-won"),
    ("Ye-jin", "Kwon", "fg", "Ye-jin"),
    ("Hyun-woo", "Seo", "fg", "Hyun-woo"),
    ("Eun-ji", "Shin", "fg", "Eun-ji"),
    ("Sung-min", "Jeon", "fg", "Sung-min"),
    # Finnish
    ("Aino", "Virtanen", "gf", "Aino"),
    ("Eero", "Korhonen", "gf", "Eero"),
    ("Sanna", "Mäkinen", "gf", "Sanna"),
    ("Juha", "Nieminen", "gf", "Juha"),
    ("Tuula", "Hämäläinen", "gf", "Tuula"),
    ("Mikko", "Heikkinen", "gf", "Mikko"),
    ("Pirjo", "Laine", "gf", "Pirjo"),
    ("Jukka", "Koskinen", "gf", "Jukka"),
    ("Satu", "Järvinen", "gf", "Satu"),
    ("Antti", "Lehtonen", "gf", "Antti"),
    ("Riikka", "Salminen", "gf", "Riikka"),
    ("Kirsi", "Mäki-Petäjä", "gf", "Kirsi"),
    ("Onni", "Väisänen", "gf", "Onni"),
    # Irish
    ("Siobhán", "Ní Bhriain", "gf", "Siobhán"),
    ("Aoife", "O'Sullivan", "gf", "Aoife"),
    ("Pádraig", "Ó Conaill", "gf", "Pádraig"),
    ("Niamh", "O'Donoghue", "gf", "Niamh"),
    ("Oisín", "Mac Cárthaigh", "gf", "Oisín"),
    ("Saoirse", "O'Dwyer", "gf", "Saoirse"),
    ("Caoimhe", "Ó Súilleabháin", "gf", "Caoimhe"),
    ("Róisín", "D'Arcy", "gf", "Róisín"),
    ("Eoghan", "Ó Ceallaigh", "gf", "Eoghan"),
    ("Clodagh", "McGuinness", "gf", "Clodagh"),
    ("Fiachra", "O'Flaherty", "gf", "Fiachra"),
    ("Gráinne", "Ní Mhaoláin", "gf", "Gráinne"),
    # elsewhere
    ("Ayşe", "Yılmaz", "gf", "Ayşe"),
    ("Mehmet", "Öztürk", "gf", "Mehmet"),
    ("Çağla", "Şahin", "gf", "Çağla"),
    ("Søren", "Østergaard", "gf", "Søren"),
    ("Ingrid", "Bjørnstad", "gf", "Ingrid"),
    ("Åsa", "Lindström", "gf", "Åsa"),
    ("Tomáš", "Dvořák", "gf", "Tomáš"),
    ("Šárka", "Procházková", "gf", "Šárka"),
    ("Zsófia", "Kovács", "fg", "Zsófia"),
    ("Bence", "Szabó", "fg", "Bence"),
    ("Eleni", "Papadopoulou", "gf", "Eleni"),
    ("Giorgos", "Konstantinidis", "gf", "Giorgos"),
    ("Haruto", "Takahashi", "fg", "Haruto"),
    ("Rin", "Kobayashi", "fg", "Rin"),
    ("Kenji", "Morimoto", "fg", "Kenji"),
    ("Dawit", "Tesfaye", "gf", "Dawit"),
    ("Meseret", "Alemu", "gf", "Meseret"),
    ("Wanjiru", "Kamau", "gf", "Wanjiru"),
    ("Otieno", "Odhiambo", "gf", "Otieno"),
    ("Kwame", "Mensah", "gf", "Kwame"),
    ("Akosua", "Boateng", "gf", "Akosua"),
    ("Shirin", "Farahani", "gf", "Shirin"),
    ("Dariush", "Tehrani", "gf", "Dariush"),
    ("Keoni", "Kahananui", "gf", "Keoni"),
    ("Ximena", "Villaseñor", "gf", "Ximena"),
    ("Ignacio", "Echeverría", "gf", "Ignacio"),
    ("Maricel", "Dimaculangan", "gf", "Maricel"),
    ("Heloïse", "Fontaine-Rousseau", "gf", "Heloïse"),
    ("Ghislaine", "Lefèbvre-Aubert", "gf", "Ghislaine"),
    ("Eitan", "Ben-Shachar", "gf", "Eitan"),
    ("Tahu", "Te Whare", "gf", "Tahu"),
    ("Aroha", "Ngata", "gf", "Aroha"),
    ("Sukarni", "", "mono", "Sukarni"),
    ("Setiawati", "", "mono", "Setiawati"),
)

# ---------------------------------------------------------------------------------------------
# E-mail, web
# ---------------------------------------------------------------------------------------------
FREE_MAIL = (
    "gmail.com",
    "outlook.com",
    "yahoo.co.uk",
    "web.de",
    "gmx.de",
    "orange.fr",
    "laposte.net",
    "uol.com.br",
    "bol.com.br",
    "rediffmail.com",
    "naver.com",
    "qq.com",
    "163.com",
    "wp.pl",
    "onet.pl",
    "hotmail.fr",
    "proton.me",
    "icloud.com",
    "eircom.net",
    "kolumbus.fi",
    "seznam.cz",
    "yandex.com",
)
COMPANIES = (
    ("Kestrel Works", "kestrelworks.io"),
    ("TNB Logistics", "tnb-logistics.co.in"),
    ("Bellhaven Dental", "bellhaven-dental.com"),
    ("Ostrava Metal", "ostrava-metal.cz"),
    ("Agência Sol", "agenciasol.com.br"),
    ("LumenPay", "lumenpay.eu"),
    ("Northbay Credit Union", "northbaycu.org"),
    ("Fjordline Travel", "fjordline-travel.no"),
    ("Sakura Denki", "sakura-denki.jp"),
    ("Vistula Leasing", "vistula-leasing.pl"),
    ("Harrow & Finch", "harrowfinch.co.uk"),
    ("Quillon Health", "quillonhealth.com"),
    ("Dunmore Analytics", "dunmore-analytics.ie"),
    ("Rheinwerk Solar", "rheinwerk-solar.de"),
    ("Maison Verlaine", "maison-verlaine.fr"),
    ("Copperleaf Insurance", "copperleaf-ins.com"),
)
ROLE_LOCALS = ("billing", "accounts", "support", "hr", "payroll", "privacy", "noreply", "claims")
MAIL_TAGS = ("billing", "shop", "work", "bank", "news")

# ---------------------------------------------------------------------------------------------
# US addresses (real cities and ZIP prefixes; hand-picked street names)
# ---------------------------------------------------------------------------------------------
CITIES = (
    ("Dayton", "OH", "454"),
    ("Tacoma", "WA", "984"),
    ("Boise", "ID", "837"),
    ("Duluth", "MN", "558"),
    ("Asheville", "NC", "288"),
    ("Albuquerque", "NM", "871"),
    ("Spokane", "WA", "992"),
    ("Savannah", "GA", "314"),
    ("Lubbock", "TX", "794"),
    ("Fresno", "CA", "937"),
    ("Chattanooga", "TN", "374"),
    ("Des Moines", "IA", "503"),
    ("Providence", "RI", "029"),
    ("Burlington", "VT", "054"),
    ("Missoula", "MT", "598"),
    ("Green Bay", "WI", "543"),
    ("Ann Arbor", "MI", "481"),
    ("Baton Rouge", "LA", "708"),
    ("Santa Fe", "NM", "875"),
    ("Salt Lake City", "UT", "841"),
    ("Fort Wayne", "IN", "468"),
    ("Wichita", "KS", "672"),
    ("Tulsa", "OK", "741"),
    ("Little Rock", "AR", "722"),
    ("Bangor", "ME", "044"),
    ("Erie", "PA", "165"),
    ("Syracuse", "NY", "132"),
    ("Hartford", "CT", "061"),
    ("Reno", "NV", "895"),
    ("Eugene", "OR", "974"),
    ("St. Paul", "MN", "551"),
    ("Kalamazoo", "MI", "490"),
    ("Flagstaff", "AZ", "860"),
    ("Cheyenne", "WY", "820"),
    ("Sioux Falls", "SD", "571"),
    ("Fargo", "ND", "581"),
    ("Anchorage", "AK", "995"),
    ("Honolulu", "HI", "968"),
    ("Wilmington", "DE", "198"),
    ("Charleston", "SC", "294"),
    ("Lexington", "KY", "405"),
    ("Omaha", "NE", "681"),
    ("Richmond", "VA", "232"),
    ("Morgantown", "WV", "265"),
    ("Manchester", "NH", "031"),
    ("Brooklyn", "NY", "112"),
    ("Washington", "DC", "200"),
)
STREETS = (
    "Oakmont",
    "Juniper",
    "Maple Ridge",
    "Kingsbury",
    "Bluebonnet",
    "Martin Luther King Jr",
    "Old Mill",
    "Cedar Hollow",
    "Fairview",
    "Prospect",
    "Wabash",
    "Sycamore",
    "Chestnut Hill",
    "El Camino",
    "Peachtree",
    "Shoreline",
    "Lakeshore",
    "7th",
    "43rd",
    "125th",
    "2nd",
    "Magnolia",
    "Quail Run",
    "Tamarack",
    "Wolf Creek",
    "Harbor View",
    "Glenwood",
    "Calloway",
    "Pinecrest",
    "Stonebridge",
    "Hawthorne",
    "Willowbrook",
    "Saddleback",
    "Cottonwood",
    "Briarcliff",
    "Mesa Verde",
    "Larkspur",
    "Osage",
    "Division",
    "Commerce",
    "Tecumseh",
    "Alder",
    "Belmont",
)
SUFFIXES = (
    "Street",
    "St",
    "St.",
    "Avenue",
    "Ave",
    "Ave.",
    "Drive",
    "Dr",
    "Road",
    "Rd",
    "Lane",
    "Ln",
    "Boulevard",
    "Blvd",
    "Court",
    "Ct",
    "Way",
    "Place",
    "Terrace",
    "Circle",
    "Parkway",
    "Trail",
    "Loop",
    "Pike",
)
PRE_DIRECTIONS = ("N", "S", "E", "W", "North", "West", "N.", "SW")
POST_DIRECTIONS = ("NW", "SE", "NE", "SW")
UNITS = (
    "Apt {n}",
    "Apt. {n}{l}",
    "Suite {nn}",
    "Ste {nn}",
    "Unit {n}",
    "#{n}{l}",
    "Apartment {n}{l}",
)

# ---------------------------------------------------------------------------------------------
# Cards: (network, IIN prefixes, length, spaced grouping)
# ---------------------------------------------------------------------------------------------
CARD_NETWORKS: tuple[tuple[str, tuple[str, ...], int, tuple[int, ...]], ...] = (
    ("visa", ("4",), 16, (4, 4, 4, 4)),
    ("mastercard", tuple(str(p) for p in range(51, 56)), 16, (4, 4, 4, 4)),
    ("mastercard2", tuple(str(p) for p in range(2221, 2721)), 16, (4, 4, 4, 4)),
    ("amex", ("34", "37"), 15, (4, 6, 5)),
    ("discover", ("6011", "65", *(str(p) for p in range(644, 650))), 16, (4, 4, 4, 4)),
    ("jcb", tuple(str(p) for p in range(3528, 3590)), 16, (4, 4, 4, 4)),
    ("diners", ("36", "38", *(str(p) for p in range(300, 306))), 14, (4, 6, 4)),
    ("unionpay", ("62",), 16, (4, 4, 4, 4)),
    ("unionpay19", ("62",), 19, (4, 4, 4, 4, 3)),
    ("maestro", ("5018", "5020", "5038", "5893", "6304", "6759", "6761", "6763"), 16, (4, 4, 4, 4)),
    ("maestro19", ("5018", "6759", "6304"), 19, (4, 4, 4, 4, 3)),
)

# ---------------------------------------------------------------------------------------------
# IBAN layouts: country -> BBAN blocks ("n" digits, "a" upper-case letters, "c" alphanumeric,
# "k" a national check computed below, or a literal bank-code choice list)
# ---------------------------------------------------------------------------------------------
GB_BANKS = ("NWBK", "BARC", "LOYD", "HBUK", "MIDL", "MONZ", "SRLG", "BUKB")
NL_BANKS = ("ABNA", "INGB", "RABO", "SNSB", "TRIO", "KNAB", "BUNQ", "ASNB")
IE_BANKS = ("BOFI", "AIBK", "IPBS", "ULSB")
IBAN_COUNTRIES = (
    "DE",
    "GB",
    "FR",
    "NL",
    "ES",
    "BE",
    "AT",
    "CH",
    "PL",
    "PT",
    "IE",
    "FI",
    "NO",
    "BR",
)

# Common words that are also first names: used lower-case, in non-name senses, in the plain text
# of templates below ("rose", "will", "mark", "bill", "grace", "frank", "pat", "sue", "amber", ...).


def _fold(s: str) -> str:
    """ASCII fold for e-mail local parts: drop accents, map the letters NFKD keeps."""
    table = str.maketrans({"ł": "l", "Ł": "L", "đ": "d", "Đ": "D", "ø": "o", "Ø": "O", "ı": "i"})
    decomposed = unicodedata.normalize("NFKD", s.translate(table))
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _digits(rng: random.Random, n: int) -> str:
    return "".join(str(rng.randrange(10)) for _ in range(n))


def _luhn_check_digit(body: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


def luhn_ok(number: str) -> bool:
    """Whether the digits of ``number`` pass the Luhn check."""
    digits = [int(c) for c in number if c.isdigit()]
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def iban_ok(iban: str) -> bool:
    """Whether ``iban`` (spaces allowed) passes the ISO 13616 mod-97 check."""
    compact = iban.replace(" ", "").upper()
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def _group(s: str, sizes: tuple[int, ...], sep: str) -> str:
    out, pos = [], 0
    for size in sizes:
        out.append(s[pos : pos + size])
        pos += size
    assert pos == len(s), (s, sizes)
    return sep.join(out)


# ---------------------------------------------------------------------------------------------
# Value generators
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Person:
    given: str
    family: str
    order: str
    call: str

    def full(self, native: bool) -> str:
        if self.order == "mono":
            return self.given
        if self.order == "fg" and native:
            return f"{self.family} {self.given}"
        return f"{self.given} {self.family}"

    @property
    def last(self) -> str:
        return self.family or self.given


def card_number(rng: random.Random) -> str:
    _, prefixes, length, groups = rng.choice(CARD_NETWORKS)
    prefix = rng.choice(prefixes)
    body = prefix + _digits(rng, length - len(prefix) - 1)
    number = body + _luhn_check_digit(body)
    assert luhn_ok(number)
    style = rng.randrange(3)
    if style == 0:
        return number
    return _group(number, groups, " " if style == 1 else "-")


def bad_luhn_16(rng: random.Random) -> str:
    """16 digits with a card-like prefix whose Luhn check fails."""
    body = rng.choice(("4", "5", "6", "3")) + _digits(rng, 14)
    good = int(_luhn_check_digit(body))
    number = body + str((good + rng.randrange(1, 10)) % 10)
    assert not luhn_ok(number)
    style = rng.randrange(3)
    return number if style == 0 else _group(number, (4, 4, 4, 4), " " if style == 1 else "-")


def ssn(rng: random.Random) -> str:
    bad = {"078051120", "219099999", "123456789", "457555462"}
    while True:
        area = rng.randrange(1, 900)
        if area == 666:
            continue
        group, serial = rng.randrange(1, 100), rng.randrange(1, 10000)
        s = f"{area:03d}{group:02d}{serial:04d}"
        if s in bad or len(set(s)) == 1:
            continue
        sep = rng.choice(("-", "-", "-", " ", ""))
        return f"{s[:3]}{sep}{s[3:5]}{sep}{s[5:]}"


def bad_ssn(rng: random.Random) -> str:
    """SSN-shaped (3-2-4) with an area no SSN has (000, 666, 9xx)."""
    area = rng.choice(("000", "666", f"9{_digits(rng, 2)}"))
    return f"{area}-{rng.randrange(1, 100):02d}-{rng.randrange(1, 10000):04d}"


def _alnum(rng: random.Random, n: int, alphabet: str) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def _mod11_no(digits10: str) -> str | None:
    weights = (5, 4, 3, 2, 7, 6, 5, 4, 3, 2)
    r = sum(int(d) * w for d, w in zip(digits10, weights, strict=True)) % 11
    k = (11 - r) % 11
    return None if k == 10 else str(k)


def _es_dc(digits10: str) -> str:
    weights = (1, 2, 4, 8, 5, 10, 9, 7, 3, 6)
    k = 11 - sum(int(d) * w for d, w in zip(digits10, weights, strict=True)) % 11
    return "0" if k == 11 else "1" if k == 10 else str(k)


def bban(rng: random.Random, country: str) -> str:
    upper = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    d = _digits
    if country == "DE":
        return d(rng, 8) + d(rng, 10)
    if country == "GB":
        return rng.choice(GB_BANKS) + d(rng, 6) + d(rng, 8)
    if country == "FR":
        bank, branch, account = d(rng, 5), d(rng, 5), d(rng, 11)
        key = 97 - (89 * int(bank) + 15 * int(branch) + 3 * int(account)) % 97
        return f"{bank}{branch}{account}{key:02d}"
    if country == "NL":
        return rng.choice(NL_BANKS) + d(rng, 10)
    if country == "ES":
        bank, branch, account = d(rng, 4), d(rng, 4), d(rng, 10)
        return bank + branch + _es_dc("00" + bank + branch) + _es_dc(account) + account
    if country == "BE":
        first = d(rng, 10)
        check = int(first) % 97 or 97
        return f"{first}{check:02d}"
    if country == "AT":
        return d(rng, 5) + d(rng, 11)
    if country == "CH":
        return d(rng, 5) + d(rng, 12)
    if country == "PL":
        bank7 = d(rng, 7)
        weights = (3, 9, 7, 1, 3, 9, 7)
        k = (10 - sum(int(c) * w for c, w in zip(bank7, weights, strict=True)) % 10) % 10
        return bank7 + str(k) + d(rng, 16)
    if country == "PT":
        body = d(rng, 19)
        return f"{body}{98 - (int(body) * 100) % 97:02d}"
    if country == "IE":
        return rng.choice(IE_BANKS) + d(rng, 6) + d(rng, 8)
    if country == "FI":
        body = d(rng, 13)
        return body + _luhn_check_digit(body)
    if country == "NO":
        while True:
            body = d(rng, 10)
            no_check = _mod11_no(body)
            if no_check is not None:
                return body + no_check
    if country == "BR":
        return (
            d(rng, 8) + d(rng, 5) + d(rng, 10) + rng.choice("CP") + _alnum(rng, 1, upper[:5] + "12")
        )
    raise ValueError(country)


def iban(rng: random.Random, country: str | None = None) -> str:
    cc = country or rng.choice(IBAN_COUNTRIES)
    b = bban(rng, cc)
    numeric = "".join(str(int(c, 36)) for c in b + cc + "00")
    compact = f"{cc}{98 - int(numeric) % 97:02d}{b}"
    assert iban_ok(compact)
    if rng.random() < 0.5:
        return compact
    return " ".join(compact[i : i + 4] for i in range(0, len(compact), 4))


# Phone numbers: each generator returns (number, region); every number is a valid number of
# its region's numbering plan (area codes, mobile ranges and lengths as the regulators publish).
US_AREAS = (
    "206",
    "216",
    "251",
    "267",
    "314",
    "385",
    "412",
    "469",
    "480",
    "502",
    "585",
    "614",
    "651",
    "704",
    "717",
    "763",
    "802",
    "828",
    "857",
    "929",
    "360",
    "541",
    "865",
    "952",
)


def phone_us(rng: random.Random) -> str:
    a = rng.choice(US_AREAS)
    while True:
        x = f"{rng.randrange(2, 10)}{_digits(rng, 2)}"
        if x[1:] != "11" and x != "555":
            break
    n = _digits(rng, 4)
    fmt = rng.choice(
        (
            "({a}) {x}-{n}",
            "{a}-{x}-{n}",
            "{a}.{x}.{n}",
            "+1 {a} {x} {n}",
            "+1-{a}-{x}-{n}",
            "1 ({a}) {x}-{n}",
            "{a}{x}{n}",
            "+1 ({a}) {x}-{n}",
            "{a} {x} {n}",
        )
    )
    return fmt.format(a=a, x=x, n=n)


def phone_uk(rng: random.Random) -> str:
    kind = rng.randrange(4)
    if kind == 0:  # London 020 3/7/8
        local = rng.choice("378") + _digits(rng, 7)
        return rng.choice(
            (
                f"020 {local[:4]} {local[4:]}",
                f"+44 20 {local[:4]} {local[4:]}",
                f"+44 (0)20 {local[:4]} {local[4:]}",
                f"(020) {local[:4]} {local[4:]}",
            )
        )
    if kind == 1:  # Manchester / Leeds / Glasgow geographic
        code = rng.choice(("161", "113", "141"))
        local = rng.choice("2345") + _digits(rng, 6)
        return rng.choice(
            (f"0{code} {local[:3]} {local[3:]}", f"+44 {code} {local[:3]} {local[3:]}")
        )
    mobile = "7" + rng.choice(("4", "5", "7", "8", "9")) + _digits(rng, 8)
    return rng.choice(
        (
            f"0{mobile[:4]} {mobile[4:]}",
            f"+44 {mobile[:4]} {mobile[4:]}",
            f"+44{mobile}",
            f"0{mobile}",
            f"+44 {mobile[:4]} {mobile[4:7]} {mobile[7:]}",
        )
    )


def phone_de(rng: random.Random) -> str:
    kind = rng.randrange(4)
    if kind == 0:  # Berlin 030 / Hamburg 040: 8-digit subscriber numbers
        code = rng.choice(("30", "40"))
        sub = rng.choice("2345678") + _digits(rng, 7)
        return rng.choice(
            (
                f"0{code} {sub}",
                f"+49 {code} {sub}",
                f"+49 (0){code} {sub[:3]} {sub[3:]}",
                f"0{code}/{sub}",
                f"0{code} {sub[:4]} {sub[4:]}",
            )
        )
    if kind == 1:  # Munich 089, 7 or 8 digits
        sub = rng.choice("2345678") + _digits(rng, rng.choice((6, 7)))
        return rng.choice((f"089 {sub}", f"089/{sub}", f"+49 89 {sub}"))
    prefix, rest = rng.choice((("151", 8), ("160", 7), ("171", 7), ("176", 8), ("152", 8)))
    sub = _digits(rng, rest)
    return rng.choice(
        (f"0{prefix} {sub}", f"+49 {prefix} {sub}", f"0{prefix}-{sub}", f"+49{prefix}{sub}")
    )


def phone_fr(rng: random.Random) -> str:
    first = rng.choice(("1", "2", "3", "4", "5", "6", "7"))
    second = rng.choice("3456789") if first == "7" else str(rng.randrange(10))
    if first in "12345":
        second = str(rng.randrange(1, 10))
    rest = first + second + _digits(rng, 7)
    pairs = [rest[1:3], rest[3:5], rest[5:7], rest[7:9]]
    return rng.choice(
        (
            f"0{rest[0]} " + " ".join(pairs),
            f"+33 {rest[0]} " + " ".join(pairs),
            f"+33 (0){rest[0]} " + " ".join(pairs),
            f"0{rest[0]}." + ".".join(pairs),
            f"0{rest}",
        )
    )


def phone_in(rng: random.Random) -> str:
    if rng.randrange(4):
        mobile = rng.choice(("98", "99", "97", "96", "90", "94", "88", "70", "81", "63")) + _digits(
            rng, 8
        )
        return rng.choice(
            (
                f"+91 {mobile[:5]} {mobile[5:]}",
                f"+91-{mobile}",
                f"+91{mobile}",
                f"0{mobile[:5]} {mobile[5:]}",
                f"{mobile[:5]} {mobile[5:]}",
                f"+91 {mobile}",
            )
        )
    code, sub = rng.choice((("22", "2"), ("11", "4"), ("80", "2"), ("44", "2")))
    local = sub + _digits(rng, 7)
    return rng.choice(
        (f"+91 {code} {local[:4]} {local[4:]}", f"0{code}-{local}", f"0{code} {local}")
    )


def phone_br(rng: random.Random) -> str:
    ddd = rng.choice(("11", "21", "31", "41", "51", "61", "71", "81", "85", "19", "27", "48"))
    if rng.randrange(3):
        sub = "9" + rng.choice("6789") + _digits(rng, 7)
        return rng.choice(
            (
                f"+55 {ddd} {sub[:5]}-{sub[5:]}",
                f"({ddd}) {sub[:5]}-{sub[5:]}",
                f"+55 ({ddd}) {sub[:5]}-{sub[5:]}",
                f"+55{ddd}{sub}",
            )
        )
    sub = rng.choice("2345") + _digits(rng, 7)
    return rng.choice(
        (
            f"({ddd}) {sub[:4]}-{sub[4:]}",
            f"+55 {ddd} {sub[:4]}-{sub[4:]}",
            f"+55 {ddd} {sub[:4]} {sub[4:]}",
        )
    )


PHONES: dict[str, Callable[[random.Random], str]] = {
    "US": phone_us,
    "UK": phone_uk,
    "DE": phone_de,
    "FR": phone_fr,
    "IN": phone_in,
    "BR": phone_br,
}
PHONE_WEIGHTS = (("US", 4), ("UK", 2), ("DE", 2), ("FR", 2), ("IN", 2), ("BR", 2))


def phone(rng: random.Random) -> str:
    countries = [c for c, w in PHONE_WEIGHTS for _ in range(w)]
    return PHONES[rng.choice(countries)](rng)


def ipv4(rng: random.Random) -> str:
    kind = rng.randrange(5)
    if kind == 0:
        return f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
    if kind == 1:
        return f"192.168.{rng.randrange(256)}.{rng.randrange(1, 255)}"
    while True:
        first = rng.randrange(1, 224)
        if first not in (10, 127, 169, 172, 192, 100):
            break
    return f"{first}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"


def ipv6(rng: random.Random) -> str:
    kind = rng.randrange(5)
    if kind == 0:  # documentation prefix, compressed
        groups = [
            0x2001,
            0x0DB8,
            rng.randrange(0x10000),
            0,
            0,
            0,
            rng.randrange(0x10000),
            rng.randrange(1, 0x10000),
        ]
    elif kind == 1:  # link-local
        groups = [0xFE80, 0, 0, 0, *(rng.randrange(0x10000) for _ in range(4))]
    elif kind == 2:  # IPv4-mapped
        return f"::ffff:{ipv4(rng)}"
    else:  # global unicast, all groups drawn
        groups = [
            rng.choice((0x2A02, 0x2600, 0x2804, 0x2405, 0x2001)),
            *(rng.randrange(0x10000) for _ in range(7)),
        ]
    addr = ipaddress.IPv6Address(sum(g << (16 * (7 - i)) for i, g in enumerate(groups)))
    text = addr.exploded if rng.random() < 0.25 else str(addr)
    return text.upper() if rng.random() < 0.15 else text


def street_line(rng: random.Random, *, unit: bool | None = None) -> str:
    number = str(
        rng.choice(
            (
                rng.randrange(1, 100),
                rng.randrange(100, 1000),
                rng.randrange(1000, 10000),
                rng.randrange(10000, 30000),
            )
        )
    )
    parts = [number]
    if rng.random() < 0.2:
        parts.append(rng.choice(PRE_DIRECTIONS))
    parts.append(rng.choice(STREETS))
    parts.append(rng.choice(SUFFIXES))
    if rng.random() < 0.08:
        parts.append(rng.choice(POST_DIRECTIONS))
    line = " ".join(parts)
    if unit if unit is not None else rng.random() < 0.35:
        u = rng.choice(UNITS).format(
            n=rng.randrange(1, 40), nn=rng.randrange(100, 999), l=rng.choice("ABCD")
        )
        line += rng.choice((", ", " ")) + u
    return line


def city_line(rng: random.Random) -> str:
    city, state, zip3 = rng.choice(CITIES)
    z = zip3 + _digits(rng, 2)
    if rng.random() < 0.15:
        z += "-" + _digits(rng, 4)
    return f"{city}, {state} {z}"


def address(rng: random.Random) -> str:
    return f"{street_line(rng)}, {city_line(rng)}"


def url(rng: random.Random) -> str:
    _, domain = rng.choice(COMPANIES)
    kind = rng.randrange(1, 6)
    if kind == 1:
        return f"https://{domain}/track?id={_digits(rng, 8)}&lang=en"
    if kind == 2:
        return f"www.{domain}/support/{rng.choice(('faq', 'returns', 'contact', 'billing'))}"
    if kind == 3:
        return f"http://portal.{domain}/invoices/{rng.randrange(1000, 99999)}"
    if kind == 4:
        return f"https://{domain}/careers/{rng.choice(('data-analyst', 'nurse-practitioner', 'sre', 'paralegal'))}"
    return f"https://docs.{domain}/v{rng.randrange(1, 4)}/reset-password"


def email(rng: random.Random, person: Person, domain: str | None = None) -> str:
    given = re.sub(
        r"[^a-z]", "", _fold(person.call if person.order == "fg" else person.given).lower()
    )
    family = re.sub(r"[^a-z]", "", _fold(person.family).lower()) or f"{rng.randrange(10, 99)}"
    style = rng.randrange(8)
    local = (
        f"{given}.{family}",
        f"{given}{family}",
        f"{given[0]}.{family}",
        f"{family}.{given}",
        f"{given}_{family}{rng.randrange(1, 99)}",
        f"{given}+{rng.choice(MAIL_TAGS)}",
        f"{family}{rng.randrange(1970, 2006)}",
        f"{given}.{family[0]}",
    )[style]
    dom = domain or rng.choice(FREE_MAIL)
    out = f"{local}@{dom}"
    if rng.random() < 0.08:
        out = f"{local.capitalize()}@{dom.capitalize()}"
    return out


# ---------------------------------------------------------------------------------------------
# Hard negatives (never labelled)
# ---------------------------------------------------------------------------------------------


def isbn(rng: random.Random) -> str:
    body = "978" + _digits(rng, 9)
    check = (10 - sum(int(c) * (1 if i % 2 == 0 else 3) for i, c in enumerate(body)) % 10) % 10
    full = body + str(check)
    return rng.choice((full, f"{full[:3]}-{full[3]}-{full[4:7]}-{full[7:12]}-{full[12]}"))


def _date(rng: random.Random) -> str:
    y, m, d = rng.randrange(2019, 2026), rng.randrange(1, 13), rng.randrange(1, 29)
    months = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
    return rng.choice(
        (
            f"{y}-{m:02d}-{d:02d}",
            f"{d:02d}/{m:02d}/{y}",
            f"{months[m - 1]} {d}, {y}",
            f"{m}/{d}/{y}",
            f"{d}.{m:02d}.{y}",
        )
    )


def _time(rng: random.Random) -> str:
    return f"{rng.randrange(7, 20):02d}:{rng.randrange(60):02d}"


def _ts(rng: random.Random) -> str:
    y, m, d = rng.randrange(2021, 2026), rng.randrange(1, 13), rng.randrange(1, 29)
    h, mi, s = rng.randrange(24), rng.randrange(60), rng.randrange(60)
    return rng.choice(
        (
            f"{y}-{m:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}Z",
            f"{y}-{m:02d}-{d:02d} {h:02d}:{mi:02d}:{s:02d} UTC",
            f"{y}-{m:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}.{rng.randrange(1000):03d}+02:00",
        )
    )


def _price(rng: random.Random) -> str:
    whole, cents = rng.randrange(3, 4000), rng.randrange(100)
    return rng.choice(
        (
            f"${whole:,}.{cents:02d}",
            f"€{whole},{cents:02d}",
            f"£{whole}.{cents:02d}",
            f"R$ {whole:,}".replace(",", ".") + f",{cents:02d}",
            f"₹{whole * 10:,}",
            f"USD {whole:,}.00",
        )
    )


def _version(rng: random.Random) -> str:
    a, b, c, d = rng.randrange(1, 20), rng.randrange(20), rng.randrange(30), rng.randrange(1, 300)
    return rng.choice(
        (
            f"{a}.{b}.{c}.{d}-rc",
            f"v{a}.{b}.{c}",
            f"{a}.{b}.{c}.{d}",
            f"{a}.{b}.{c}-beta.{d % 9}",
            f"build {a}.{b}.{c}.{d + 1000}",
        )
    )


def _upper(rng: random.Random, n: int) -> str:
    return _alnum(rng, n, "ABCDEFGHJKLMNPQRSTUVWXYZ")


NEGATIVES: dict[str, Callable[[random.Random], str]] = {
    "order": lambda r: rng_choice_fmt(
        r, ("#{u2}-{d5}-{d2}", "{d10}", "PO-20{y}-{d6}", "ORD{d8}", "#{d7}")
    ),
    "invoice": lambda r: rng_choice_fmt(
        r, ("INV-20{y}-{d6}", "20{y}{d4}-{d4}", "F{d9}", "INV/{d5}/{y}")
    ),
    "tracking": lambda r: rng_choice_fmt(
        r,
        (
            "1Z{u3}{d3}{d10}",
            "{d4} {d4} {d4}",
            "9400 {d4} {d4} {d4} {d4} {d2}",
            "{u2}{d9}GB",
            "JD{d18}",
        ),
    ),
    "badluhn": bad_luhn_16,
    "isbn": isbn,
    "version": _version,
    "version2": _version,
    "ts": _ts,
    "ts2": _ts,
    "date": _date,
    "date2": _date,
    "time": _time,
    "time2": _time,
    "price": _price,
    "price2": _price,
    "sku": lambda r: rng_choice_fmt(
        r, ("KX-{d4}-B", "SKU {u3}{d5}", "WH-{d4}XM{d1}", "{d2}-{d4}-{d2}", "P/N {d3}-{d5}")
    ),
    "zip": lambda r: r.choice(CITIES)[2] + _digits(r, 2),
    "serial": lambda r: rng_choice_fmt(
        r, ("{d3}-{d3}-{d4}", "{d4}-{d3}-{d4}", "SN{d10}", "{d3}.{d3}.{d4}", "({d3}) {d3}-{d4}")
    ),
    "badssn": bad_ssn,
    "uuid": lambda r: (
        f"{r.randrange(16**8):08x}-{r.randrange(16**4):04x}-4{r.randrange(16**3):03x}-a{r.randrange(16**3):03x}-{r.randrange(16**12):012x}"
    ),
    "sha": lambda r: f"{r.randrange(16**40):040x}",
    "ticket": lambda r: rng_choice_fmt(r, ("{d6}", "HD-{d5}", "SR{d8}", "{u3}-{d4}")),
    "caseno": lambda r: rng_choice_fmt(r, ("CS-{d4}-{d4}", "{d4}-{d4}-{d4}", "C{d9}")),
    "percent": lambda r: f"{r.randrange(1, 40)}.{r.randrange(10)}%",
    "port": lambda r: str(r.randrange(1024, 65535)),
    "pid": lambda r: str(r.randrange(300, 99999)),
    "last4": lambda r: _digits(r, 4),
    "exp": lambda r: f"{r.randrange(1, 13):02d}/{r.randrange(26, 32)}",
    "bic": lambda r: r.choice(
        ("DEUTDEFF", "BNPAFRPP", "NWBKGB2L", "INGBNL2A", "COBADEFFXXX", "BPOTBEB1")
    ),
    "empno": lambda r: rng_choice_fmt(r, ("E{d6}", "{d7}", "EMP-{d5}")),
    "room": lambda r: f"{r.randrange(1, 9)}{r.randrange(10, 40)}{r.choice('AB')}",
    "bp": lambda r: f"{r.randrange(105, 160)}/{r.randrange(65, 100)}",
    "age": lambda r: str(r.randrange(19, 90)),
    "rx": lambda r: rng_choice_fmt(r, ("RX{d7}", "{d7}-{d2}")),
    "policy": lambda r: rng_choice_fmt(r, ("{u3}{d9}", "{d3}-{d3}-{d3}-{d2}", "HP-{d8}")),
    "txn": lambda r: rng_choice_fmt(r, ("TX{d12}", "{d16}0", "{u2}{d10}")),
    "weight": lambda r: f"{r.randrange(1, 30)}.{r.randrange(10)} kg",
    "rma": lambda r: rng_choice_fmt(r, ("RMA-{d6}", "R{d8}")),
    "asset": lambda r: rng_choice_fmt(r, ("IT-{d5}", "LT{d6}")),
    "rule": lambda r: str(r.randrange(100, 9999)),
    "bytes": lambda r: str(r.randrange(200, 90000)),
    "confcode": lambda r: rng_choice_fmt(r, ("{d3} {d3} {d4}", "{d4} {d4} {d2}")),
    "pin": lambda r: _digits(r, 4),
    "promo": lambda r: rng_choice_fmt(r, ("SPRING{d2}", "{u4}-{u4}", "WELCOME{d3}")),
    "unix": lambda r: str(r.randrange(1_600_000_000, 1_760_000_000)),
    "qty": lambda r: str(r.randrange(1, 250)),
    "jobid": lambda r: str(r.randrange(10**6, 10**8)),
    "num": lambda r: str(r.randrange(1000, 99999)),
    "ua": lambda r: (
        f"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        f"Chrome/{r.randrange(110, 128)}.0.{r.randrange(5000, 6500)}.{r.randrange(10, 200)} Safari/537.36"
    ),
    "clf_ts": lambda r: (
        f"{r.randrange(1, 29):02d}/{r.choice(('Jan', 'Mar', 'Jun', 'Oct'))}/20{r.randrange(21, 26)}:{r.randrange(24):02d}:{r.randrange(60):02d}:{r.randrange(60):02d} +0000"
    ),
    "company_name": lambda r: r.choice(COMPANIES)[0],
    "oid": lambda r: (
        f"1.3.6.1.4.1.{r.randrange(1000, 60000)}.{r.randrange(1, 20)}.{r.randrange(1, 9)}"
    ),
    "mac_serial": lambda r: rng_choice_fmt(r, ("{d2}-{d3}-{d3}-{d4}", "{d5} {d6}")),
    "postcode": lambda r: r.choice(
        ("SW1A 1AA", "EC2R 8AH", "10115", "75008", "01310-100", "560001")
    ),
    "dose": lambda r: f"{r.choice((5, 10, 20, 25, 50, 500))} mg",
}


def rng_choice_fmt(rng: random.Random, formats: tuple[str, ...]) -> str:
    """Fill one of ``formats``: {dN} N random digits, {uN} N letters, {y} a two-digit year."""
    fmt = rng.choice(formats)

    def sub(m: re.Match[str]) -> str:
        kind, n = m.group(1), m.group(2)
        if kind == "y":
            return str(rng.randrange(19, 26))
        return _digits(rng, int(n)) if kind == "d" else _upper(rng, int(n))

    return re.sub(r"\{([duy])(\d*)\}", sub, fmt)


# ---------------------------------------------------------------------------------------------
# Templates by family. {UPPER} slots are labelled values, {lower} slots are hard negatives; the
# same slot twice in a template is the same value (labelled at every occurrence).
# ---------------------------------------------------------------------------------------------
TEMPLATES: dict[str, tuple[str, ...]] = {
    "support_ticket": (
        "Ticket #{ticket} | Priority: P2\nCustomer: {NAME}\nEmail: {EMAIL}\nPhone: {PHONE}\nIssue: card {CARD} declined twice at checkout, order {order}, amount {price}.",
        "Subject: refund not received\n\nHello team, I returned order {order} on {date} and the refund of {price} has still not reached my account {IBAN}. Could you check? Kind regards, {NAME}",
        '[{ts}] New ticket from {EMAIL}: "the parcel with tracking number {tracking} never arrived at {ADDR}". Assigned to {FIRST2}.',
        "Caller {NAME} (callback {PHONE}) wants to mark invoice {invoice} as disputed. Will follow up by {date}.",
        "Customer said her name is {NAME} and her SSN is {SSN}. Identity verified; card on file {CARD}, exp {exp}.",
        "Hi, I'm {FIRST}. The app has crashed on every start since version {version}. My login email is {EMAIL}, can someone help?",
        "escalation: {NAME_LC} says the {price} charge on the card ending {last4} is not hers. sales rose {percent} this week so queue is long, will call her back at {PHONE}.",
        "Support case {caseno}: the shipping label was printed with {ADDR} but the customer, {NAME}, moved to {ADDR2} in {date}.",
        "{FIRST} called about a double charge on {CARD}. Transaction ids {txn} and {txn2}. Refund approved by {FIRST2}.",
        "Ticket {ticket}: user cannot reset password; reset link {URL} expired. Contact {EMAIL}, tel. {PHONE}.",
        "Complaint from {NAME}, {ADDR}: the technician arrived at {time} instead of {time2}. Gave a goodwill credit of {price}.",
        "Account recovery for {EMAIL}: security answers matched, last login from {IP}. Agent: {NAME2}.",
        "Please update the billing address for {NAME} to {ADDR}. Old zip {zip} can be removed. Thanks, {FIRST2}",
        "Mr. {LAST} asked us to stop sending letters; promo code {promo} revoked. His number is {PHONE}.",
    ),
    "email": (
        "From: {NAME} <{EMAIL}>\nTo: {EMAIL_ROLE}\nSubject: Invoice {invoice}\n\nDear {FIRST2},\nplease find attached invoice {invoice}. Payment to {IBAN} by {date} would be great.\n\nBest,\n{FIRST}",
        "Dear Mr. {LAST},\n\nThank you for your payment of {price}. Your IBAN {IBAN} will be debited on {date}. If you have any questions, call us on {PHONE_UK}.\n\nKind regards,\n{NAME2}\nCustomer Care",
        "Hi {FIRST},\n\njust confirming the delivery to {ADDR} on {date} between {time} and {time2}. Your order number is {order}.\n\nCheers,\n{FIRST2}",
        "Dear Dr. {LAST},\n\nyour appointment is moved to {ts}. Reply to {EMAIL_ROLE} or call {PHONE}.\n\n{NAME2}, front desk",
        "Guten Tag Frau {LAST},\n\nbitte überweisen Sie {price} auf das Konto {IBAN} (BIC {bic}). Rückfragen gern unter {PHONE_DE}.\n\nMit freundlichen Grüßen\n{NAME2}",
        "Bonjour {FIRST},\n\nvotre colis {tracking} sera livré le {date}. Pour toute question : {PHONE_FR} ou {EMAIL_ROLE}.\n\nCordialement,\n{NAME2}",
        "Olá {FIRST}, seu pedido {order} saiu para entrega. Dúvidas? Ligue {PHONE_BR}. Atenciosamente, {NAME2}",
        "Hello {FIRST},\n\nwelcome aboard! Your payroll will be paid to {IBAN}; your desk phone is {PHONE}. IT will send your laptop (asset {asset}) to {ADDR}.\n\n{NAME2}\nPeople Team",
        "Subject: Re: your application\n\n{FIRST}, thanks for sending your CV. I looked at {URL_PROFILE} too. Can we talk on {date}? My mobile is {PHONE_IN}.\n\nRegards, {NAME2}",
        "Hi all, {NAME} will join the audit team on {date}. Please add {EMAIL} to the distribution list. We will bill the client {price} per day.",
        "Namaste {FIRST} ji, your KYC is complete. Registered mobile {PHONE_IN}, email {EMAIL}. Ref {caseno}.",
        "Dear {NAME},\nYour card {CARD} has been replaced. The new card will arrive at {ADDR} within 7 days. Do not reply to {EMAIL_ROLE}.",
    ),
    "chat": (
        "[{time}] {FIRST}: hey, can you resend the link? {URL}\n[{time2}] agent: sure, sent to {EMAIL}",
        "{FIRST_LC}: my number changed, it's {PHONE} now\nbot: thanks! i will update your profile",
        "me: what's the printer ip again\n{FIRST_LC}: {IPV4}, admin login is on the sticky note",
        "hey it's {NAME_LC}, i live at {ADDR_LC} now so pls update my account",
        "ok so my card is {CARD} exp {exp} can u try again? will wait",
        "lol {FIRST} you pasted your ssn {SSN} into the shared doc, delete it pls",
        "{FIRST}: can you wire it to {IBAN}? thx\n{FIRST2}: done, ref {invoice}",
        "agent: may I have your full name?\ncustomer: {NAME}\nagent: and the phone number on the account?\ncustomer: {PHONE}",
        "{FIRST_LC}: mark my words, the build {version} is broken again\n{FIRST2_LC}: will look after lunch",
        "[{time}] {NAME}: my email is {EMAIL} and i'm at {ADDR}, the courier had the wrong zip",
        "grace period ends friday btw. {FIRST} said to text {PHONE} if the parcel doesn't show",
        "customer: hi this is {NAME_LC}, the refund went to the wrong iban, mine is {IBAN}",
        "{FIRST}: vpn drops every 5 min, my ip is {IPV6}\nit: known issue on client {version}",
    ),
    "clinical_note": (
        "Pt: {FORMAL}. DOB {date}. Seen {date2} for follow-up of hypertension, BP {bp}. Lives at {ADDR}. Emergency contact {NAME2} ({PHONE}).",
        "Referral: Dr. {LAST2} refers {NAME}, {age}F, for MRI of the left knee. Insurance ID {policy}. Patient can be reached on {PHONE}.",
        "Nursing note {time}: {FIRST} reports pain 4/10, walking with assistance. Daughter {NAME2} called from {PHONE}; will visit tomorrow. {dose} given.",
        "Discharge summary for {NAME} (room {room}). Follow up with Dr. {LAST2} in two weeks. Prescription {rx} sent to the pharmacy at {ADDR}.",
        "{NAME} presented with a rash on {date}. Allergies: penicillin. Billing: SSN {SSN}, card {CARD}.",
        "Telehealth visit, {ts}. Patient {NAME} joined from {IPV4}. Plan: {dose} daily, recheck BP {bp} in 4 weeks.",
        "Dr. {LAST2} to Dr. {LAST3}: thank you for seeing {FIRST}, {age}M, for cardiology review. Contact: {EMAIL}.",
        "Intake form (handwritten, transcribed): name {NAME_LC}, address {ADDR_LC}, phone {PHONE}, emergency contact {NAME2}.",
    ),
    "form": (
        "Name: {NAME}\nDate of birth: {date}\nSSN: {SSN}\nAddress: {ADDR}\nPhone: {PHONE_US}\nEmail: {EMAIL}",
        "APPLICANT\nSurname, given names: {FORMAL}\nIBAN: {IBAN}\nBIC: {bic}\nSignature date: {date}",
        "Full name | {NAME}\nMobile | {PHONE}\nCard | {CARD}\nPromo code | {promo}",
        "Account holder: {NAME}\nAccount: {IBAN}\nReference: {invoice}\nAmount: {price}",
        "Taxpayer: {NAME}\nTIN (SSN): {SSN}\nMailing address:\n{ADDR_2LINE}\nForm revision {version}",
        "EMERGENCY CONTACT\nContact: {NAME2}\nRelationship: sister\nPhone: {PHONE}\nAlt. phone: {PHONE2}",
        "Tenant application — applicant {NAME}, current address {ADDR}, SSN {SSN}, monthly rent {price}, move-in {date}.",
        "Customer ID {empno}; name {FORMAL}; e-mail {EMAIL}; IP at sign-up {IP}; consent {ts}.",
        "Voter registration (test form): last name {LAST}, first name {FIRST}, residence {ADDR}, ZIP {zip}.",
        "Name: {NAME}\nPassport requested: no\nPhone (home): {PHONE}\nPhone (work): {PHONE2}\nWebsite: {URL}",
    ),
    "payment": (
        "Payment failed for card {CARD} (exp {exp}) on order {order}, amount {price}. Retry scheduled {ts}.",
        "Chargeback notice: cardholder {NAME}, card {CARD}, transaction {txn} on {date}.",
        "SEPA transfer from {IBAN} to {IBAN2}, reference {invoice}, amount {price}.",
        "Please pay into {IBAN} (account holder {NAME}) before {date}, quoting {invoice}.",
        "Card {CARD} was added to the wallet of {EMAIL} from IP {IP}. Voucher {badluhn} is not a card and was rejected.",
        "Refund of {price} to card {CARD} approved by {FIRST2}; ticket {ticket}. Price rose {percent} after the update.",
        "Direct debit mandate {caseno}: debtor {NAME}, {ADDR}, IBAN {IBAN}.",
        "Gift certificate {badluhn} redeemed for order {order}; remaining card {CARD} charged {price}.",
    ),
    "hr_record": (
        "New hire: {NAME}, employee no. {empno}, start date {date}. SSN {SSN}. Home address {ADDR}. Personal email {EMAIL}.",
        "Background check for {FORMAL}: SSN {SSN}, previous address {ADDR}, phone {PHONE_US}.",
        "Performance note: {FIRST} will mark the Q3 targets as met; revenue rose {percent}. Reviewer {NAME2}.",
        "Leave request from {NAME} ({empno}) for {date} to {date2}. Cover: {FIRST2}. Reachable at {PHONE}.",
        "Offboarding {NAME}: revoke badge {asset}, forward mail to {EMAIL2}, last payroll to {IBAN}.",
        "Payroll change: {NAME}, new direct deposit IBAN {IBAN}, effective {date}. Approved by {NAME2}.",
    ),
    "it_log": (
        "{ts} sshd[{pid}]: Failed password for invalid user admin from {IPV4} port {port} ssh2",
        '{IPV4} - - [{clf_ts}] "GET /api/v2/orders/{order} HTTP/1.1" 200 {bytes} "-" "{ua}"',
        "{ts} WARN auth: login for {EMAIL} from {IPV6} rejected (MFA timeout), build {version}",
        "firewall: DROP src={IPV4} dst={IPV4B} proto=TCP dport=443 rule={rule} ts={unix}",
        "Incident {caseno}: {NAME} reported a phishing mail; sender IP {IP}; link {URL}.",
        "DHCP lease {IPV4} assigned to the laptop of {NAME} (asset tag {asset}) until {ts}",
        "{ts} INFO job {jobid} finished on node {IPV6}; agent version {version}; OID {oid}",
        "audit: user {EMAIL} changed MFA phone to {PHONE} from {IP} at {ts}",
        "{ts} ERROR payment-svc: card {CARD} rejected by issuer (code 05), request id {uuid}",
        "deploy {sha} rolled out to {IPV4} and {IPV4B}; release {version}; operator {FIRST_LC}",
    ),
    "shipping": (
        "Ship to: {NAME}\n{ADDR_2LINE}\nTel: {PHONE_US}\nTracking: {tracking}\nWeight: {weight}",
        "Delivery exception for {tracking}: recipient {NAME} not at {ADDR}. Call {PHONE} to reschedule.",
        "Return label for order {order}: from {ADDR} to warehouse zip {zip}. RMA {rma}.",
        "Packing slip — {qty} x {sku}, {qty2} x {sku2}. Deliver to {ADDR_STREET}, leave with neighbour. Contact {FIRST} {PHONE}.",
        "Driver note: gate code {pin}, {ADDR}. Customer {NAME} prefers texts to {PHONE}.",
        "International parcel {tracking} to {NAME}, postcode {postcode}, phone {PHONE}, declared value {price}.",
    ),
    "crm_note": (
        "Met {NAME} from {company_name} at the expo; follow up at {EMAIL} or {PHONE}. Profile: {URL_PROFILE}",
        "Lead: {NAME} — website {URL}. Prefers WhatsApp {PHONE_IN}.",
        "Call summary: {FIRST} will send the signed contract; invoices go to {EMAIL_ROLE}. Next call {date}.",
        "{NAME} (buyer, {company_name}) wants a quote for {qty} units of {sku}. Office: {ADDR}.",
        "Partner portal account for {EMAIL} created; SSO from {IP}; docs at {URL}.",
        "Old contact {NAME2} left the company; new contact is {NAME}, {EMAIL}, {PHONE}.",
    ),
    "web_page": (
        "Contact us: {EMAIL_ROLE} | {PHONE} | {URL}. Office hours {time}–{time2}.",
        "Our team: {NAME} (founder), {NAME2} (CTO). Visit us at {ADDR} or online at {URL}.",
        "Press contact: {NAME}, {EMAIL}, {PHONE}. Photos: {URL}",
        "Imprint: {company_name}, {ADDR_STREET}. Managing director {NAME}. Tel. {PHONE_DE}. VAT ID DE{num}{num2}.",
    ),
    "negatives": (
        "Order {order} shipped on {date}; tracking {tracking}. Sales rose {percent} this quarter and we will mark it in the report.",
        "Release notes: version {version} fixes the crash in {version2}; checksum {sha}.",
        "Invoice {invoice}, total {price}, due {date}. Internal reference {badluhn}.",
        "Book order: ISBN {isbn}, {price}, ships from the warehouse in ZIP {zip}.",
        "Serial no. {serial}, part {sku}, firmware {version}. Will ship on Monday.",
        "The rose bushes need pruning, the grace period for returns is 30 days, and we bill {price} per hour.",
        "Lot {badssn} passed inspection at {time} on {date}; lot {badssn2} is on hold.",
        "Meeting moved to {ts}. Dial-in code {confcode}, PIN {pin}.",
        "Please frank the envelopes and mark them urgent; we will pat ourselves on the back when the queue is empty.",
        "Job {uuid} ran on node build-{num}; OID {oid}; exit code 0 after {qty} s.",
        "Price list {date}: {sku} {price}, {sku2} {price2}. Case {caseno} closed.",
        "Amber warning light on unit {serial}; will replace the fan. Ticket {ticket}.",
        "Reading list: ISBN {isbn} and ISBN {isbn2}. Return by {date} or we will bill you {price}.",
        "Build {version} deployed at {ts}; rollback tag {version2}; see ticket {ticket}.",
        "Temperature rose to 31.5 °C at {time}; sensor {mac_serial} logged {qty} readings; unix time {unix}.",
        "Shipment {tracking} contains {qty} units of {sku}; customs value {price}; reference {badluhn}.",
        "If the parcel does not arrive, we will sue the carrier, said the memo. Case {caseno}, zip {zip}.",
        "Chrome/{num}.0.{num2}.{qty} crashed; the version string 10.2.3.4-rc is still pinned on {date}.",
        "Gift card balance check: code {badluhn}, balance {price}. Membership number {serial}.",
        "Support FAQ: where is my order {order}? Tracking numbers look like {tracking} and arrive within {qty} hours.",
        "Dawn shift starts at {time}; bill of lading {invoice}; jack stands are in bay {room}.",
    ),
}
FAMILY_WEIGHTS: dict[str, int] = {
    "support_ticket": 14,
    "email": 12,
    "chat": 12,
    "clinical_note": 8,
    "form": 10,
    "payment": 8,
    "hr_record": 6,
    "it_log": 9,
    "shipping": 6,
    "crm_note": 6,
    "web_page": 3,
    "negatives": 12,
}

# slot key -> entity, for labelled slots
ENTITY_OF: dict[str, str] = {
    **dict.fromkeys(
        (
            "NAME",
            "NAME2",
            "FIRST",
            "FIRST2",
            "LAST",
            "LAST2",
            "LAST3",
            "FORMAL",
            "NAME_LC",
            "FIRST_LC",
            "FIRST2_LC",
        ),
        "PERSON",
    ),
    **dict.fromkeys(("EMAIL", "EMAIL2", "EMAIL_ROLE"), "EMAIL_ADDRESS"),
    **dict.fromkeys(
        ("PHONE", "PHONE2", "PHONE_US", "PHONE_UK", "PHONE_DE", "PHONE_FR", "PHONE_IN", "PHONE_BR"),
        "PHONE_NUMBER",
    ),
    "CARD": "CREDIT_CARD",
    "SSN": "US_SSN",
    **dict.fromkeys(("IBAN", "IBAN2"), "IBAN_CODE"),
    **dict.fromkeys(("IP", "IPV4", "IPV4B", "IPV6"), "IP_ADDRESS"),
    **dict.fromkeys(("ADDR", "ADDR2", "ADDR_LC", "ADDR_2LINE", "ADDR_STREET"), "STREET_ADDRESS"),
    **dict.fromkeys(("URL", "URL_PROFILE"), "URL"),
}
SLOT = re.compile(r"\{([A-Za-z0-9_]+)\}")


@dataclass
class Record:
    rng: random.Random
    people: tuple[Person, Person, Person]
    company_domain: str
    values: dict[str, str] = field(default_factory=dict)

    def _name(self, person: Person) -> str:
        native = person.order == "fg" and self.rng.random() < 0.7
        return person.full(native)

    def labelled(self, key: str) -> str:
        rng, (p1, p2, p3) = self.rng, self.people
        base = key.removesuffix("_LC")
        person = p2 if base.endswith("2") else p3 if base.endswith("3") else p1
        value: str
        if base in ("NAME", "NAME2"):
            value = self._name(person)
        elif base in ("FIRST", "FIRST2"):
            value = person.call
        elif base in ("LAST", "LAST2", "LAST3"):
            value = person.last
        elif base == "FORMAL":
            if person.order == "mono":
                value = person.given
            elif rng.random() < 0.3:
                value = f"{person.family.upper()} {person.given}"
            else:
                value = f"{person.family}, {person.given}"
        elif base in ("EMAIL", "EMAIL2"):
            domain = self.company_domain if rng.random() < 0.25 else None
            value = email(rng, person, domain)
        elif base == "EMAIL_ROLE":
            value = f"{rng.choice(ROLE_LOCALS)}@{self.company_domain}"
        elif base in ("PHONE", "PHONE2"):
            value = phone(rng)
        elif base.startswith("PHONE_"):
            value = PHONES[base.removeprefix("PHONE_")](rng)
        elif base == "CARD":
            value = card_number(rng)
        elif base == "SSN":
            value = ssn(rng)
        elif base in ("IBAN", "IBAN2"):
            value = iban(rng)
        elif base == "IP":
            value = ipv4(rng) if rng.random() < 0.6 else ipv6(rng)
        elif base in ("IPV4", "IPV4B"):
            value = ipv4(rng)
        elif base == "IPV6":
            value = ipv6(rng)
        elif base in ("ADDR", "ADDR2"):
            value = address(rng)
        elif base == "ADDR_2LINE":
            value = f"{street_line(rng)}\n{city_line(rng)}"
        elif base == "ADDR_STREET":
            value = street_line(rng)
        elif base == "URL":
            value = url(rng)
        elif base == "URL_PROFILE":
            value = profile_url(rng, person)
        else:
            raise KeyError(key)
        return value.lower() if key.endswith("_LC") else value

    def value(self, key: str) -> str:
        if key not in self.values:
            if key in ENTITY_OF:
                self.values[key] = self.labelled(key)
            else:
                self.values[key] = NEGATIVES[
                    key.rstrip("0123456789") if key not in NEGATIVES else key
                ](self.rng)
        return self.values[key]


def profile_url(rng: random.Random, person: Person) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", _fold(person.full(False)).lower()).strip("-")
    site = rng.choice(
        (
            "https://www.linkedin.com/in/{s}-{h}",
            "https://github.com/{s}",
            "https://{s}.dev",
            "https://about.me/{s}",
        )
    )
    return site.format(s=slug, h=f"{rng.randrange(16**6):06x}")


def render(template: str, rec: Record) -> tuple[str, list[dict[str, int | str]]]:
    """Fill ``template``; return the text and its spans (offsets checked against the values)."""
    out: list[str] = []
    placed: list[tuple[dict[str, int | str], str]] = []
    pos = 0
    last = 0
    for m in SLOT.finditer(template):
        literal = template[last : m.start()]
        out.append(literal)
        pos += len(literal)
        key = m.group(1)
        value = rec.value(key)
        if key in ENTITY_OF:
            placed.append(
                ({"start": pos, "end": pos + len(value), "entity": ENTITY_OF[key]}, value)
            )
        out.append(value)
        pos += len(value)
        last = m.end()
    out.append(template[last:])
    text = "".join(out)
    for span, value in placed:
        assert text[int(span["start"]) : int(span["end"])] == value, (text, span, value)
    return text, [span for span, _ in placed]


def _check_person_tokens(value: str) -> None:
    """A PERSON value is built only from the NAMES list (guards against template typos)."""
    tokens = {
        t for g, f, _, c in NAMES for t in re.split(r"[\s,\-]+", _fold(f"{g} {f} {c}").casefold())
    }
    for tok in re.split(r"[\s,\-]+", _fold(value).casefold()):
        assert not tok or tok in tokens, (value, tok)


def generate(seed: int = SEED, records: int = RECORDS) -> list[dict[str, object]]:
    rng = random.Random(seed)
    people = [Person(*n) for n in NAMES]
    families = [f for f, w in FAMILY_WEIGHTS.items() for _ in range(w)]
    seen: set[str] = set()
    rows: list[dict[str, object]] = []
    while len(rows) < records:
        family = rng.choice(families)
        template = rng.choice(TEMPLATES[family])
        trio = rng.sample(people, 3)
        rec = Record(rng, (trio[0], trio[1], trio[2]), rng.choice(COMPANIES)[1])
        text, spans = render(template, rec)
        if text in seen:
            continue
        seen.add(text)
        spans.sort(key=lambda s: (int(s["start"]), int(s["end"])))
        for a, b in itertools.pairwise(spans):
            assert int(a["end"]) <= int(b["start"]), (text, a, b)
        for s in spans:
            v = text[int(s["start"]) : int(s["end"])]
            assert v and v == v.strip(), (text, s)
            if s["entity"] == "CREDIT_CARD":
                assert luhn_ok(v), v
            if s["entity"] == "IBAN_CODE":
                assert iban_ok(v), v
            if s["entity"] == "PERSON":
                _check_person_tokens(v)
        rows.append(
            {"id": f"pii-eval-{len(rows) + 1:04d}", "text": text, "spans": spans, "source": family}
        )
    return rows


def dumps(rows: list[dict[str, object]]) -> bytes:
    return "".join(json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n" for r in rows).encode(
        "utf-8"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help=f"output file (default {OUT})")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--records", type=int, default=RECORDS)
    args = parser.parse_args(argv)
    rows = generate(args.seed, args.records)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(dumps(rows))
    counts = Counter(
        str(s["entity"]) for r in rows for s in cast("list[dict[str, object]]", r["spans"])
    )
    print(f"wrote {len(rows)} records to {args.out}", file=sys.stderr)
    for entity, n in sorted(counts.items()):
        print(f"  {entity:15s} {n}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
