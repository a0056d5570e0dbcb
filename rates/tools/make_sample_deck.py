#!/usr/bin/env python3
"""Generate the shipped sample rate decks and sample CDRs under rates/.

Stdlib only, Python 3.11, deterministic: running it twice gives byte-identical
files (prices come from a SHA-256 of the prefix, CDRs from a seeded PRNG).

    python3 rates/tools/make_sample_deck.py            # (re)write the files
    python3 rates/tools/make_sample_deck.py --check    # validate them only

Writes:
    rates/sample-deck.csv   full example deck (every E.164 country code, ...)
    rates/test-deck.csv     tiny deck with easy numbers for hand-computed tests
    rates/sample-cdrs.jsonl ~200 CDRs for `rating-engine rate`, incl. bad lines

All prices are EXAMPLES, not anybody's tariff.  See rates/README.md.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import hashlib
import io
import json
import random
import re
import sys
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

from rating_engine.core import COLUMNS

HEADER = list(COLUMNS)
CURRENCY = "USD"
RATES_DIR = Path(__file__).resolve().parent.parent

# ---------------------------------------------------------------------------
# 1. Geographic rows: every assigned E.164 country code (ITU-T E.164 list of
#    assigned country codes), plus the sub-codes that split a shared code
#    between territories (NANP area codes, +7, +44 Crown Dependencies, ...).
#    (prefix, ISO 3166 alpha-2, destination, zone, explicit rate or None)
#    Non-geographic codes use country "XX" (see NONGEO below).
# ---------------------------------------------------------------------------
GEO: list[tuple[str, str, str, str, str | None]] = [
    # --- World zone 1: NANP -------------------------------------------------
    ("1", "US", "United States", "A", "0.0059"),
    ("1242", "BS", "Bahamas", "C", None),
    ("1246", "BB", "Barbados", "C", None),
    ("1264", "AI", "Anguilla", "C", None),
    ("1268", "AG", "Antigua and Barbuda", "C", None),
    ("1284", "VG", "British Virgin Islands", "C", None),
    ("1340", "VI", "US Virgin Islands", "B", "0.0185"),
    ("1345", "KY", "Cayman Islands", "C", None),
    ("1441", "BM", "Bermuda", "C", None),
    ("1473", "GD", "Grenada", "C", None),
    ("1649", "TC", "Turks and Caicos Islands", "C", None),
    ("1658", "JM", "Jamaica", "C", None),
    ("1664", "MS", "Montserrat", "C", None),
    ("1670", "MP", "Northern Mariana Islands", "B", "0.0210"),
    ("1671", "GU", "Guam", "B", "0.0195"),
    ("1684", "AS", "American Samoa", "C", None),
    ("1721", "SX", "Sint Maarten", "C", None),
    ("1758", "LC", "Saint Lucia", "C", None),
    ("1767", "DM", "Dominica", "C", None),
    ("1784", "VC", "Saint Vincent and the Grenadines", "C", None),
    ("1787", "PR", "Puerto Rico", "A", "0.0089"),
    ("1809", "DO", "Dominican Republic", "C", None),
    ("1829", "DO", "Dominican Republic", "C", None),
    ("1849", "DO", "Dominican Republic", "C", None),
    ("1868", "TT", "Trinidad and Tobago", "C", None),
    ("1869", "KN", "Saint Kitts and Nevis", "C", None),
    ("1876", "JM", "Jamaica", "C", None),
    ("1939", "PR", "Puerto Rico", "A", "0.0089"),
    # Canadian area codes (CNAC / NANPA): everything else under +1 is US.
    *[
        (f"1{npa}", "CA", "Canada", "A", "0.0065")
        for npa in (
            "204",
            "226",
            "236",
            "249",
            "250",
            "257",
            "263",
            "273",
            "289",
            "306",
            "343",
            "354",
            "365",
            "367",
            "368",
            "382",
            "403",
            "416",
            "418",
            "428",
            "431",
            "437",
            "438",
            "450",
            "468",
            "474",
            "506",
            "514",
            "519",
            "548",
            "579",
            "581",
            "584",
            "587",
            "604",
            "613",
            "639",
            "647",
            "672",
            "683",
            "705",
            "709",
            "742",
            "753",
            "778",
            "780",
            "782",
            "807",
            "819",
            "825",
            "867",
            "873",
            "879",
            "902",
            "905",
            "942",
        )
    ],
    # --- World zone 7 ---------------------------------------------------------
    ("7", "RU", "Russia", "B", "0.0420"),
    ("76", "KZ", "Kazakhstan", "C", None),
    ("77", "KZ", "Kazakhstan", "C", "0.0890"),
    # --- World zone 2: Africa and the North Atlantic ------------------------
    ("20", "EG", "Egypt", "C", "0.0710"),
    ("211", "SS", "South Sudan", "D", None),
    ("212", "MA", "Morocco", "C", "0.1150"),
    ("2125288", "EH", "Western Sahara", "C", None),
    ("2125289", "EH", "Western Sahara", "C", None),
    ("213", "DZ", "Algeria", "C", None),
    ("216", "TN", "Tunisia", "C", None),
    ("218", "LY", "Libya", "C", None),
    ("220", "GM", "Gambia", "C", None),
    ("221", "SN", "Senegal", "C", None),
    ("222", "MR", "Mauritania", "C", None),
    ("223", "ML", "Mali", "C", None),
    ("224", "GN", "Guinea", "C", None),
    ("225", "CI", "Cote d'Ivoire", "C", None),
    ("226", "BF", "Burkina Faso", "C", None),
    ("227", "NE", "Niger", "C", None),
    ("228", "TG", "Togo", "C", None),
    ("229", "BJ", "Benin", "C", None),
    ("230", "MU", "Mauritius", "C", None),
    ("231", "LR", "Liberia", "C", None),
    ("232", "SL", "Sierra Leone", "D", None),
    ("233", "GH", "Ghana", "C", None),
    ("234", "NG", "Nigeria", "C", "0.0950"),
    ("235", "TD", "Chad", "D", None),
    ("236", "CF", "Central African Republic", "D", None),
    ("237", "CM", "Cameroon", "C", None),
    ("238", "CV", "Cape Verde", "C", None),
    ("239", "ST", "Sao Tome and Principe", "D", None),
    ("240", "GQ", "Equatorial Guinea", "C", None),
    ("241", "GA", "Gabon", "C", None),
    ("242", "CG", "Congo", "C", None),
    ("243", "CD", "Congo DR", "C", None),
    ("244", "AO", "Angola", "C", None),
    ("245", "GW", "Guinea-Bissau", "D", None),
    ("246", "IO", "Diego Garcia (British Indian Ocean Territory)", "D", None),
    ("247", "SH", "Ascension Island", "D", None),
    ("248", "SC", "Seychelles", "C", None),
    ("249", "SD", "Sudan", "C", None),
    ("250", "RW", "Rwanda", "C", None),
    ("251", "ET", "Ethiopia", "C", None),
    ("252", "SO", "Somalia", "D", None),
    ("253", "DJ", "Djibouti", "C", None),
    ("254", "KE", "Kenya", "C", None),
    ("255", "TZ", "Tanzania", "C", None),
    ("256", "UG", "Uganda", "C", None),
    ("257", "BI", "Burundi", "C", None),
    ("258", "MZ", "Mozambique", "C", None),
    ("260", "ZM", "Zambia", "C", None),
    ("261", "MG", "Madagascar", "C", None),
    ("262", "RE", "Reunion", "B", "0.0310"),
    ("262269", "YT", "Mayotte", "B", "0.0340"),
    ("263", "ZW", "Zimbabwe", "C", None),
    ("264", "NA", "Namibia", "C", None),
    ("265", "MW", "Malawi", "C", None),
    ("266", "LS", "Lesotho", "C", None),
    ("267", "BW", "Botswana", "C", None),
    ("268", "SZ", "Eswatini", "C", None),
    ("269", "KM", "Comoros", "D", None),
    ("27", "ZA", "South Africa", "B", "0.0245"),
    ("290", "SH", "Saint Helena", "D", None),
    ("2908", "SH", "Tristan da Cunha", "D", None),
    ("291", "ER", "Eritrea", "D", None),
    ("297", "AW", "Aruba", "C", None),
    ("298", "FO", "Faroe Islands", "B", None),
    ("299", "GL", "Greenland", "D", None),
    # --- World zones 3 and 4: Europe -----------------------------------------
    ("30", "GR", "Greece", "B", "0.0165"),
    ("31", "NL", "Netherlands", "A", "0.0105"),
    ("32", "BE", "Belgium", "A", "0.0112"),
    ("33", "FR", "France", "A", "0.0098"),
    ("34", "ES", "Spain", "A", "0.0087"),
    ("350", "GI", "Gibraltar", "B", None),
    ("351", "PT", "Portugal", "A", "0.0121"),
    ("352", "LU", "Luxembourg", "A", "0.0134"),
    ("353", "IE", "Ireland", "A", "0.0109"),
    ("354", "IS", "Iceland", "B", None),
    ("355", "AL", "Albania", "C", None),
    ("356", "MT", "Malta", "B", None),
    ("357", "CY", "Cyprus", "B", None),
    ("358", "FI", "Finland", "A", "0.0155"),
    ("35818", "AX", "Aland Islands", "B", None),
    ("359", "BG", "Bulgaria", "B", None),
    ("36", "HU", "Hungary", "B", None),
    ("370", "LT", "Lithuania", "B", None),
    ("371", "LV", "Latvia", "B", None),
    ("372", "EE", "Estonia", "B", None),
    ("373", "MD", "Moldova", "C", None),
    ("374", "AM", "Armenia", "C", None),
    ("375", "BY", "Belarus", "C", None),
    ("376", "AD", "Andorra", "B", None),
    ("377", "MC", "Monaco", "B", None),
    ("378", "SM", "San Marino", "B", None),
    ("379", "VA", "Vatican City (reserved)", "B", None),
    ("380", "UA", "Ukraine", "C", "0.0690"),
    ("381", "RS", "Serbia", "C", None),
    ("382", "ME", "Montenegro", "C", None),
    ("383", "XK", "Kosovo", "C", None),
    ("385", "HR", "Croatia", "B", None),
    ("386", "SI", "Slovenia", "B", None),
    ("387", "BA", "Bosnia and Herzegovina", "C", None),
    ("389", "MK", "North Macedonia", "C", None),
    ("39", "IT", "Italy", "A", "0.0092"),
    ("3906698", "VA", "Vatican City", "B", None),
    ("40", "RO", "Romania", "B", None),
    ("41", "CH", "Switzerland", "A", "0.0145"),
    ("420", "CZ", "Czech Republic", "B", None),
    ("421", "SK", "Slovakia", "B", None),
    ("423", "LI", "Liechtenstein", "B", None),
    ("43", "AT", "Austria", "A", "0.0128"),
    ("44", "GB", "United Kingdom", "A", None),  # effective-dated below
    ("441481", "GG", "Guernsey", "B", "0.0215"),
    ("441534", "JE", "Jersey", "B", "0.0215"),
    ("441624", "IM", "Isle of Man", "B", "0.0205"),
    ("45", "DK", "Denmark", "A", "0.0118"),
    ("46", "SE", "Sweden", "A", "0.0099"),
    ("47", "NO", "Norway", "A", "0.0131"),
    ("4779", "SJ", "Svalbard and Jan Mayen", "B", None),
    ("48", "PL", "Poland", "B", "0.0149"),
    ("49", "DE", "Germany", "A", None),  # effective-dated below
    # --- World zone 5: South and Central America ------------------------------
    ("500", "FK", "Falkland Islands", "D", None),
    ("501", "BZ", "Belize", "C", None),
    ("502", "GT", "Guatemala", "C", None),
    ("503", "SV", "El Salvador", "C", None),
    ("504", "HN", "Honduras", "C", None),
    ("505", "NI", "Nicaragua", "C", None),
    ("506", "CR", "Costa Rica", "C", None),
    ("507", "PA", "Panama", "C", None),
    ("508", "PM", "Saint Pierre and Miquelon", "D", None),
    ("509", "HT", "Haiti", "C", None),
    ("51", "PE", "Peru", "B", "0.0210"),
    ("52", "MX", "Mexico", "B", "0.0215"),
    ("53", "CU", "Cuba", "D", None),
    ("54", "AR", "Argentina", "B", "0.0265"),
    ("55", "BR", "Brazil", "B", "0.0199"),
    ("56", "CL", "Chile", "B", "0.0185"),
    ("57", "CO", "Colombia", "B", "0.0280"),
    ("58", "VE", "Venezuela", "C", None),
    ("590", "GP", "Guadeloupe", "B", None),
    ("591", "BO", "Bolivia", "C", None),
    ("592", "GY", "Guyana", "C", None),
    ("593", "EC", "Ecuador", "C", None),
    ("594", "GF", "French Guiana", "B", None),
    ("595", "PY", "Paraguay", "C", None),
    ("596", "MQ", "Martinique", "B", None),
    ("597", "SR", "Suriname", "C", None),
    ("598", "UY", "Uruguay", "C", None),
    ("599", "CW", "Curacao", "C", None),
    ("5993", "BQ", "Sint Eustatius", "C", None),
    ("5994", "BQ", "Saba", "C", None),
    ("5997", "BQ", "Bonaire", "C", None),
    # --- World zone 6: South Pacific and Oceania ------------------------------
    ("60", "MY", "Malaysia", "B", "0.0175"),
    ("61", "AU", "Australia", "A", "0.0135"),
    ("6189162", "CC", "Cocos (Keeling) Islands", "D", None),
    ("6189164", "CX", "Christmas Island", "D", None),
    ("62", "ID", "Indonesia", "C", "0.0650"),
    ("63", "PH", "Philippines", "C", "0.1290"),
    ("64", "NZ", "New Zealand", "A", "0.0165"),
    ("65", "SG", "Singapore", "A", "0.0089"),
    ("66", "TH", "Thailand", "B", "0.0245"),
    ("670", "TL", "Timor-Leste", "D", None),
    ("672", "NF", "Norfolk Island", "D", None),
    ("6721", "AQ", "Australian Antarctic Territory", "D", None),
    ("673", "BN", "Brunei", "C", None),
    ("674", "NR", "Nauru", "D", None),
    ("675", "PG", "Papua New Guinea", "D", None),
    ("676", "TO", "Tonga", "D", None),
    ("677", "SB", "Solomon Islands", "D", None),
    ("678", "VU", "Vanuatu", "D", None),
    ("679", "FJ", "Fiji", "C", None),
    ("680", "PW", "Palau", "D", None),
    ("681", "WF", "Wallis and Futuna", "D", None),
    ("682", "CK", "Cook Islands", "D", None),
    ("683", "NU", "Niue", "D", None),
    ("685", "WS", "Samoa", "C", None),
    ("686", "KI", "Kiribati", "D", None),
    ("687", "NC", "New Caledonia", "C", None),
    ("688", "TV", "Tuvalu", "D", None),
    ("689", "PF", "French Polynesia", "C", None),
    ("690", "TK", "Tokelau", "D", None),
    ("691", "FM", "Micronesia", "D", None),
    ("692", "MH", "Marshall Islands", "D", None),
    # --- World zone 8: East Asia --------------------------------------------
    ("81", "JP", "Japan", "A", "0.0185"),
    ("82", "KR", "South Korea", "A", "0.0160"),
    ("84", "VN", "Vietnam", "C", "0.0790"),
    ("850", "KP", "North Korea", "D", None),
    ("852", "HK", "Hong Kong", "A", "0.0095"),
    ("853", "MO", "Macau", "B", None),
    ("855", "KH", "Cambodia", "C", None),
    ("856", "LA", "Laos", "C", None),
    ("86", "CN", "China", "B", None),  # effective-dated below
    ("880", "BD", "Bangladesh", "C", "0.0580"),
    ("886", "TW", "Taiwan", "B", "0.0230"),
    # --- World zone 9: West, Central and South Asia, Middle East -----------------
    ("90", "TR", "Turkey", "B", "0.0395"),
    ("91", "IN", "India", "B", None),  # effective-dated below
    ("91792", "IN", "India - Ahmedabad (fixed)", "B", "0.0125"),
    ("91802", "IN", "India - Bengaluru (fixed)", "B", "0.0125"),
    ("92", "PK", "Pakistan", "C", "0.0810"),
    ("93", "AF", "Afghanistan", "C", None),
    ("94", "LK", "Sri Lanka", "C", None),
    ("95", "MM", "Myanmar", "C", None),
    ("960", "MV", "Maldives", "C", None),
    ("961", "LB", "Lebanon", "C", None),
    ("962", "JO", "Jordan", "C", None),
    ("963", "SY", "Syria", "C", None),
    ("964", "IQ", "Iraq", "C", None),
    ("965", "KW", "Kuwait", "C", None),
    ("966", "SA", "Saudi Arabia", "C", None),
    ("967", "YE", "Yemen", "C", None),
    ("968", "OM", "Oman", "C", None),
    ("970", "PS", "Palestine", "C", None),
    ("971", "AE", "United Arab Emirates", "C", None),
    ("972", "IL", "Israel", "B", "0.0175"),
    ("973", "BH", "Bahrain", "C", None),
    ("974", "QA", "Qatar", "C", None),
    ("975", "BT", "Bhutan", "C", None),
    ("976", "MN", "Mongolia", "C", None),
    ("977", "NP", "Nepal", "C", None),
    ("98", "IR", "Iran", "C", None),
    ("992", "TJ", "Tajikistan", "C", None),
    ("993", "TM", "Turkmenistan", "C", None),
    ("994", "AZ", "Azerbaijan", "C", None),
    ("995", "GE", "Georgia", "C", None),
    ("996", "KG", "Kyrgyzstan", "C", None),
    ("998", "UZ", "Uzbekistan", "C", None),
]

# Non-geographic / global-service codes (country "XX").
# (prefix, destination, zone, number_type, rate, connection_fee)
NONGEO: list[tuple[str, str, str, str, str, str]] = [
    ("800", "International Freephone (UIFN)", "C", "tollfree", "0.1500", "0"),
    ("808", "International Shared Cost Service (ISCS)", "C", "other", "0.2500", "0"),
    ("870", "Inmarsat", "D", "other", "4.950000", "0.0500"),
    ("878", "Universal Personal Telecommunications (UPT)", "D", "other", "1.2500", "0"),
    ("881", "Global Mobile Satellite System", "D", "other", "5.250000", "0.0500"),
    ("8816", "Iridium", "D", "other", "6.490000", "0.0500"),
    ("8817", "Iridium", "D", "other", "6.490000", "0.0500"),
    ("8818", "Globalstar", "D", "other", "1.450000", "0.0500"),
    ("8819", "Globalstar", "D", "other", "1.450000", "0.0500"),
    ("882", "International Networks", "D", "other", "2.750000", "0.0300"),
    ("88216", "Thuraya", "D", "other", "1.750000", "0.0300"),
    ("883", "International Networks", "D", "other", "0.850000", "0.0200"),
    ("888", "UN OCHA Telecommunications for Disaster Relief", "D", "other", "2.500000", "0"),
    ("979", "International Premium Rate Service (IPRS)", "D", "premium", "3.000000", "0.0500"),
    ("991", "ITPCS trial (withdrawn 2027-01-01)", "D", "other", "1.000000", "0"),
]

# ---------------------------------------------------------------------------
# 2. Mobile ranges (national numbering plans; see README for sources).
#    (prefix, country, destination suffix, explicit rate or None)
#    US/CA (NANP) and MX mobiles cannot be told apart by prefix: they are
#    priced by the geographic rows.
# ---------------------------------------------------------------------------
BR_DDD = (
    "11 12 13 14 15 16 17 18 19 21 22 24 27 28 31 32 33 34 35 37 38 41 42 43 "
    "44 45 46 47 48 49 51 53 54 55 61 62 63 64 65 66 67 68 69 71 73 74 75 77 "
    "79 81 82 83 84 85 86 87 88 89 91 92 93 94 95 96 97 98 99"
).split()

MOBILE: list[tuple[str, str, str, str | None]] = [
    *[(f"861{p}", "CN", "China - Mobile", "0.0165") for p in "3456789"],
    *[(f"91{p}", "IN", "India - Mobile", None) for p in "6789"],  # dated: see CHANGES
    ("628", "ID", "Indonesia - Mobile", "0.1150"),
    ("62811", "ID", "Indonesia - Mobile Telkomsel", "0.1390"),
    ("62812", "ID", "Indonesia - Mobile Telkomsel", "0.1390"),
    ("62813", "ID", "Indonesia - Mobile Telkomsel", "0.1390"),
    ("923", "PK", "Pakistan - Mobile", "0.1020"),
    *[(f"234{p}", "NG", "Nigeria - Mobile", None) for p in ("70", "80", "81", "90", "91")],
    *[(f"55{d}9", "BR", "Brazil - Mobile", None) for d in BR_DDD],
    ("8801", "BD", "Bangladesh - Mobile", "0.0590"),
    ("79", "RU", "Russia - Mobile", "0.1450"),
    *[
        (f"7{p}", "KZ", "Kazakhstan - Mobile", None)
        for p in (
            "700",
            "701",
            "702",
            "705",
            "706",
            "707",
            "708",
            "747",
            "771",
            "775",
            "776",
            "777",
            "778",
        )
    ],
    ("2517", "ET", "Ethiopia - Mobile Safaricom", None),
    ("2519", "ET", "Ethiopia - Mobile Ethio Telecom", None),
    ("8170", "JP", "Japan - Mobile", "0.0890"),
    ("8180", "JP", "Japan - Mobile", "0.0890"),
    ("8190", "JP", "Japan - Mobile", "0.0890"),
    ("639", "PH", "Philippines - Mobile", "0.1850"),
    ("2010", "EG", "Egypt - Mobile Vodafone", None),
    ("2011", "EG", "Egypt - Mobile Etisalat", None),
    ("2012", "EG", "Egypt - Mobile Orange", None),
    ("2015", "EG", "Egypt - Mobile WE", None),
    ("2438", "CD", "Congo DR - Mobile", None),
    ("2439", "CD", "Congo DR - Mobile", None),
    *[(f"84{p}", "VN", "Vietnam - Mobile", "0.0890") for p in "35789"],
    ("989", "IR", "Iran - Mobile", None),
    ("905", "TR", "Turkey - Mobile", "0.1850"),
    ("4915", "DE", "Germany - Mobile", "0.0215"),
    ("49160", "DE", "Germany - Mobile", "0.0215"),
    ("49162", "DE", "Germany - Mobile", "0.0215"),
    ("49163", "DE", "Germany - Mobile", "0.0215"),
    ("4917", "DE", "Germany - Mobile", "0.0215"),
    ("666", "TH", "Thailand - Mobile", "0.0295"),
    ("668", "TH", "Thailand - Mobile", "0.0295"),
    ("669", "TH", "Thailand - Mobile", "0.0295"),
    ("447", "GB", "United Kingdom - Mobile", None),  # dated: see CHANGES
    ("447781", "GG", "Guernsey - Mobile", "0.1850"),
    ("447839", "GG", "Guernsey - Mobile", "0.1850"),
    ("447911", "GG", "Guernsey - Mobile", "0.1850"),
    ("447509", "JE", "Jersey - Mobile", "0.1750"),
    ("447700", "JE", "Jersey - Mobile", "0.1750"),
    ("447797", "JE", "Jersey - Mobile", "0.1750"),
    ("447829", "JE", "Jersey - Mobile", "0.1750"),
    ("447937", "JE", "Jersey - Mobile", "0.1750"),
    ("447524", "IM", "Isle of Man - Mobile", "0.1650"),
    ("447624", "IM", "Isle of Man - Mobile", "0.1650"),
    ("447924", "IM", "Isle of Man - Mobile", "0.1650"),
    ("336", "FR", "France - Mobile", "0.0235"),
    ("337", "FR", "France - Mobile", "0.0235"),
    ("2556", "TZ", "Tanzania - Mobile", None),
    ("2557", "TZ", "Tanzania - Mobile", None),
    ("276", "ZA", "South Africa - Mobile", "0.0495"),
    ("277", "ZA", "South Africa - Mobile", "0.0495"),
    *[(f"278{p}", "ZA", "South Africa - Mobile", "0.0495") for p in "1234"],
    ("393", "IT", "Italy - Mobile", "0.0175"),
    ("2541", "KE", "Kenya - Mobile", None),
    ("2547", "KE", "Kenya - Mobile", None),
    ("959", "MM", "Myanmar - Mobile", None),
    ("573", "CO", "Colombia - Mobile", "0.0395"),
    ("8210", "KR", "South Korea - Mobile", "0.0285"),
    ("24910", "SD", "Sudan - Mobile", None),
    ("24911", "SD", "Sudan - Mobile", None),
    ("24912", "SD", "Sudan - Mobile", None),
    ("2499", "SD", "Sudan - Mobile", None),
    ("2567", "UG", "Uganda - Mobile", None),
    ("346", "ES", "Spain - Mobile", "0.0195"),
    *[(f"347{p}", "ES", "Spain - Mobile", "0.0195") for p in "1234"],
    ("2135", "DZ", "Algeria - Mobile Ooredoo", None),
    ("2136", "DZ", "Algeria - Mobile Mobilis", None),
    ("2137", "DZ", "Algeria - Mobile Djezzy", None),
    ("9647", "IQ", "Iraq - Mobile", None),
    ("549", "AR", "Argentina - Mobile", "0.1150"),
    ("937", "AF", "Afghanistan - Mobile", None),
    *[
        (f"48{p}", "PL", "Poland - Mobile", "0.0245")
        for p in ("45", "50", "51", "53", "57", "60", "66", "69", "72", "73", "78", "79", "88")
    ],
    ("2126", "MA", "Morocco - Mobile", "0.2950"),
    ("2127", "MA", "Morocco - Mobile", "0.2950"),
    *[
        (f"380{p}", "UA", "Ukraine - Mobile", None)
        for p in (
            "50",
            "63",
            "66",
            "67",
            "68",
            "73",
            "77",
            "91",
            "92",
            "93",
            "95",
            "96",
            "97",
            "98",
            "99",
        )
    ],
    *[(f"9677{p}", "YE", "Yemen - Mobile", None) for p in "01378"],
    ("2449", "AO", "Angola - Mobile", None),
    *[
        (f"998{p}", "UZ", "Uzbekistan - Mobile", None)
        for p in ("33", "88", "90", "91", "93", "94", "95", "97", "99")
    ],
    # A-zone extras, mostly to exercise longest-prefix matching.
    ("614", "AU", "Australia - Mobile", "0.0290"),
    ("316", "NL", "Netherlands - Mobile", "0.0420"),
    *[(f"324{p}", "BE", "Belgium - Mobile", "0.0385") for p in "56789"],
    ("3538", "IE", "Ireland - Mobile", "0.0310"),
    *[(f"417{p}", "CH", "Switzerland - Mobile", "0.0495") for p in "56789"],
    *[(f"436{p}", "AT", "Austria - Mobile", "0.0360") for p in "56789"],
    *[(f"467{p}", "SE", "Sweden - Mobile", "0.0245") for p in "02369"],
    ("474", "NO", "Norway - Mobile", "0.0265"),
    ("479", "NO", "Norway - Mobile", "0.0265"),
    ("3519", "PT", "Portugal - Mobile", "0.0285"),
    ("642", "NZ", "New Zealand - Mobile", "0.0445"),
    ("658", "SG", "Singapore - Mobile", "0.0099"),
    ("659", "SG", "Singapore - Mobile", "0.0099"),
    ("262639", "YT", "Mayotte - Mobile", "0.1850"),
    ("262692", "RE", "Reunion - Mobile", "0.1650"),
    ("262693", "RE", "Reunion - Mobile", "0.1650"),
]

# ---------------------------------------------------------------------------
# 3. Toll-free, premium and other special ranges (outbound).
#    (prefix, country, destination, zone, number_type, rate, fee, first, next)
# ---------------------------------------------------------------------------
SPECIAL: list[tuple[str, str, str, str, str, str, str, int, int]] = [
    *[
        (f"1{p}", "US", "United States/Canada - Toll-free", "A", "tollfree", "0.000000", "0", 6, 6)
        for p in ("800", "833", "844", "855", "866", "877", "888")
    ],
    ("1900", "US", "United States - Premium", "D", "premium", "1.250000", "0.0500", 60, 60),
    ("44800", "GB", "United Kingdom - Freephone", "B", "tollfree", "0.0295", "0", 60, 60),
    ("44808", "GB", "United Kingdom - Freephone", "B", "tollfree", "0.0295", "0", 60, 60),
    ("443", "GB", "United Kingdom - UK-wide (03)", "A", "other", "0.0105", "0", 1, 1),
    ("4487", "GB", "United Kingdom - Non-geographic (087)", "B", "other", "0.0650", "0", 60, 1),
    (
        "4470",
        "GB",
        "United Kingdom - Personal Numbering (070)",
        "C",
        "other",
        "0.3500",
        "0",
        60,
        60,
    ),
    ("4476", "GB", "United Kingdom - Pagers (076)", "C", "other", "0.2900", "0", 60, 60),
    ("449", "GB", "United Kingdom - Premium", "D", "premium", "0.9500", "0.0500", 60, 60),
    *[
        (
            f"3380{p}",
            "FR",
            "France - Numero Vert (toll-free)",
            "B",
            "tollfree",
            "0.0275",
            "0",
            60,
            60,
        )
        for p in "012345"
    ],
    ("3389", "FR", "France - Premium", "D", "premium", "0.8000", "0.0500", 60, 60),
    ("81120", "JP", "Japan - Free Dial (0120)", "B", "tollfree", "0.0650", "0", 60, 60),
    ("81800", "JP", "Japan - Free Dial (0800)", "B", "tollfree", "0.0650", "0", 60, 60),
    ("49800", "DE", "Germany - Freecall (0800)", "B", "tollfree", "0.0310", "0", 60, 60),
    ("49900", "DE", "Germany - Premium (0900)", "D", "premium", "1.990000", "0.0500", 60, 60),
    ("4932", "DE", "Germany - National (032)", "B", "other", "0.0450", "0", 60, 1),
]

# ---------------------------------------------------------------------------
# 4. tollfree_inbound rows: what receiving a call on one of our toll-free
#    numbers costs, keyed on the CALLER's number.
#    (prefix, caller country, destination, zone, number_type, rate, first, next)
# ---------------------------------------------------------------------------
TFI: list[tuple[str, str, str, str, str, str, int, int]] = [
    ("1", "US", "Toll-free from United States/Canada", "A", "geographic", "0.0185", 6, 6),
    ("1787", "PR", "Toll-free from Puerto Rico", "A", "geographic", "0.0240", 6, 6),
    ("44", "GB", "Toll-free from United Kingdom", "A", "geographic", "0.0390", 60, 60),
    ("447", "GB", "Toll-free from United Kingdom - Mobile", "B", "mobile", None, 60, 60),  # dated
    ("33", "FR", "Toll-free from France", "A", "geographic", "0.0450", 60, 60),
    ("336", "FR", "Toll-free from France - Mobile", "B", "mobile", "0.1950", 60, 60),
    ("337", "FR", "Toll-free from France - Mobile", "B", "mobile", "0.1950", 60, 60),
    ("49", "DE", "Toll-free from Germany", "A", "geographic", "0.0395", 60, 60),
    ("4915", "DE", "Toll-free from Germany - Mobile", "B", "mobile", "0.1790", 60, 60),
    ("4916", "DE", "Toll-free from Germany - Mobile", "B", "mobile", "0.1790", 60, 60),
    ("4917", "DE", "Toll-free from Germany - Mobile", "B", "mobile", "0.1790", 60, 60),
    ("61", "AU", "Toll-free from Australia", "A", "geographic", "0.0520", 60, 60),
    ("614", "AU", "Toll-free from Australia - Mobile", "B", "mobile", "0.1490", 60, 60),
    ("81", "JP", "Toll-free from Japan", "A", "geographic", "0.0890", 60, 60),
    ("8170", "JP", "Toll-free from Japan - Mobile", "B", "mobile", "0.2490", 60, 60),
    ("8180", "JP", "Toll-free from Japan - Mobile", "B", "mobile", "0.2490", 60, 60),
    ("8190", "JP", "Toll-free from Japan - Mobile", "B", "mobile", "0.2490", 60, 60),
    ("353", "IE", "Toll-free from Ireland", "A", "geographic", "0.0480", 60, 60),
    ("31", "NL", "Toll-free from Netherlands", "A", "geographic", "0.0560", 60, 60),
    ("32", "BE", "Toll-free from Belgium", "A", "geographic", "0.0610", 60, 60),
    ("34", "ES", "Toll-free from Spain", "A", "geographic", "0.0420", 60, 60),
    ("39", "IT", "Toll-free from Italy", "A", "geographic", "0.0430", 60, 60),
    ("41", "CH", "Toll-free from Switzerland", "A", "geographic", "0.0650", 60, 60),
    ("43", "AT", "Toll-free from Austria", "A", "geographic", "0.0590", 60, 60),
    ("45", "DK", "Toll-free from Denmark", "A", "geographic", "0.0470", 60, 60),
    ("46", "SE", "Toll-free from Sweden", "A", "geographic", "0.0440", 60, 60),
    ("47", "NO", "Toll-free from Norway", "A", "geographic", "0.0580", 60, 60),
    ("358", "FI", "Toll-free from Finland", "A", "geographic", "0.0690", 60, 60),
    ("65", "SG", "Toll-free from Singapore", "A", "geographic", "0.0650", 60, 60),
    ("852", "HK", "Toll-free from Hong Kong", "A", "geographic", "0.0590", 60, 60),
    ("64", "NZ", "Toll-free from New Zealand", "A", "geographic", "0.0790", 60, 60),
    ("52", "MX", "Toll-free from Mexico", "B", "geographic", "0.0890", 60, 60),
    ("55", "BR", "Toll-free from Brazil", "B", "geographic", "0.0990", 60, 60),
    ("91", "IN", "Toll-free from India", "B", "geographic", "0.2450", 60, 60),
    ("86", "CN", "Toll-free from China", "B", "geographic", "0.1150", 60, 60),
    ("27", "ZA", "Toll-free from South Africa", "B", "geographic", "0.0950", 60, 60),
    ("972", "IL", "Toll-free from Israel", "B", "geographic", "0.0690", 60, 60),
    ("971", "AE", "Toll-free from United Arab Emirates", "C", "geographic", "0.2850", 60, 60),
]

# ---------------------------------------------------------------------------
# 5. Effective-dated price changes: (prefix, service) -> windows
#    [(effective_from, effective_to, rate)], consecutive and non-overlapping;
#    effective_from inclusive, effective_to exclusive, UTC days.
# ---------------------------------------------------------------------------
CHANGES: dict[tuple[str, str], list[tuple[str, str, str]]] = {
    ("44", "outbound"): [
        ("", "2026-12-01", "0.0095"),
        ("2026-12-01", "2027-03-01", "0.0089"),
        ("2027-03-01", "", "0.0085"),
    ],
    ("447", "outbound"): [("", "2027-01-01", "0.0225"), ("2027-01-01", "", "0.0195")],
    ("49", "outbound"): [
        ("", "2026-12-01", "0.0115"),
        ("2026-12-01", "2027-02-01", "0.0109"),
        ("2027-02-01", "", "0.0102"),
    ],
    ("86", "outbound"): [("", "2026-12-01", "0.0149"), ("2026-12-01", "", "0.0139")],
    ("91", "outbound"): [("", "2026-12-01", "0.0125"), ("2026-12-01", "", "0.013850")],
    **{
        (f"91{p}", "outbound"): [("", "2026-12-01", "0.0135"), ("2026-12-01", "", "0.014950")]
        for p in "6789"
    },
    ("23480", "outbound"): [("", "2026-12-15", "0.1650"), ("2026-12-15", "", "0.178500")],
    ("991", "outbound"): [("", "2027-01-01", "1.000000")],  # code withdrawn: no successor
    ("447", "tollfree_inbound"): [("", "2026-12-01", "0.1590"), ("2026-12-01", "", "0.1450")],
}

ZONE_UP = {"A": "B", "B": "C", "C": "C", "D": "D"}  # mobile zone from country zone
GEO_RANGE = {
    "A": ("0.0040", "0.0180"),
    "B": ("0.0120", "0.0600"),
    "C": ("0.0600", "0.3000"),
    "D": ("0.4000", "2.5000"),
}
MOB_RANGE = {"B": ("0.0150", "0.0700"), "C": ("0.0600", "0.3500"), "D": ("0.3500", "2.5000")}
NANP_ISO = {"US", "CA", "PR", "VI", "GU", "MP", "AS"}


def _h(*parts: str) -> int:
    return int.from_bytes(hashlib.sha256("|".join(parts).encode()).digest()[:8], "big")


def _price(key: str, lo: str, hi: str) -> str:
    """A deterministic example price in [lo, hi) with 4, 5 or 6 decimals."""
    h = _h("price", key)
    frac = Decimal(h % 1_000_000) / Decimal(1_000_000)
    val = Decimal(lo) + (Decimal(hi) - Decimal(lo)) * frac
    places = (4, 4, 4, 5, 6, 6)[(h >> 24) % 6]
    return str(val.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP))


def _increments(key: str, iso: str, zone: str, number_type: str) -> tuple[int, int]:
    if iso in NANP_ISO:
        return (6, 6)
    h = _h("incr", key) % 4
    if number_type == "mobile":
        return {
            "B": [(60, 1), (1, 1), (60, 1), (30, 6)],
            "C": [(60, 60), (30, 6), (60, 60), (60, 1)],
            "D": [(60, 60)] * 4,
        }[zone][h]
    return {
        "A": [(1, 1), (60, 1), (1, 1), (60, 1)],
        "B": [(30, 6), (60, 1), (1, 1), (30, 6)],
        "C": [(60, 60), (60, 60), (60, 1), (30, 6)],
        "D": [(60, 60)] * 4,
    }[zone][h]


def _fee(key: str, zone: str, number_type: str) -> str:
    h = _h("fee", key) % 10
    if zone == "D":
        return (
            "0",
            "0.0100",
            "0.0200",
            "0.0500",
            "0",
            "0.0150",
            "0.0250",
            "0",
            "0.0350",
            "0.0100",
        )[h]
    if zone == "C" and number_type == "mobile" and h < 3:
        return "0.0100"
    if zone == "C" and h == 0:
        return "0.0100"
    return "0"


def _row(prefix, iso, dest, zone, ntype, service, rate, fee, first, nxt, frm="", to=""):
    return {
        "prefix": prefix,
        "country": iso,
        "destination": dest,
        "zone": zone,
        "number_type": ntype,
        "service": service,
        "rate_per_minute": rate,
        "connection_fee": fee,
        "currency": CURRENCY,
        "first_increment": str(first),
        "next_increment": str(nxt),
        "effective_from": frm,
        "effective_to": to,
    }


def _expand(base: dict) -> list[dict]:
    """Apply CHANGES to a row: one row per effective window."""
    windows = CHANGES.get((base["prefix"], base["service"]))
    if not windows:
        if not base["rate_per_minute"]:
            raise SystemExit(f"no rate for {base['prefix']} {base['service']}")
        return [base]
    return [
        {**base, "rate_per_minute": r, "effective_from": f, "effective_to": t}
        for f, t, r in windows
    ]


def build_sample_deck() -> list[dict]:
    rows: list[dict] = []
    geo_zone = {}
    for prefix, iso, name, zone, rate in GEO:
        geo_zone[prefix] = zone
        rate = rate or _price(prefix, *GEO_RANGE[zone])
        if (prefix, "outbound") in CHANGES:
            rate = ""
        first, nxt = _increments(prefix, iso, zone, "geographic")
        rows += _expand(
            _row(
                prefix,
                iso,
                name,
                zone,
                "geographic",
                "outbound",
                rate,
                _fee(prefix, zone, "geographic"),
                first,
                nxt,
            )
        )
    for prefix, name, zone, ntype, rate, fee in NONGEO:
        rows += _expand(_row(prefix, "XX", name, zone, ntype, "outbound", rate, fee, 60, 60))

    def country_zone(prefix: str) -> str:
        best = max((p for p in geo_zone if prefix.startswith(p)), key=len)
        return geo_zone[best]

    for prefix, iso, name, rate in MOBILE:
        zone = ZONE_UP[country_zone(prefix)]
        if rate is None and (prefix, "outbound") not in CHANGES:
            rate = _price(prefix, *MOB_RANGE[zone])
        first, nxt = _increments(prefix, iso, zone, "mobile")
        rows += _expand(
            _row(
                prefix,
                iso,
                name,
                zone,
                "mobile",
                "outbound",
                rate or "",
                _fee(prefix, zone, "mobile"),
                first,
                nxt,
            )
        )
    for prefix, iso, name, zone, ntype, rate, fee, first, nxt in SPECIAL:
        rows += _expand(_row(prefix, iso, name, zone, ntype, "outbound", rate, fee, first, nxt))
    for prefix, iso, name, zone, ntype, rate, first, nxt in TFI:
        rows += _expand(
            _row(prefix, iso, name, zone, ntype, "tollfree_inbound", rate or "", "0", first, nxt)
        )
    return rows


def build_test_deck() -> list[dict]:
    """Tiny deck: 1 s increments and rates that divide nicely by 60."""
    r = _row
    return [
        r("1", "US", "United States", "A", "geographic", "outbound", "0.006000", "0", 1, 1),
        r(
            "1206",
            "US",
            "United States - Mobile (test)",
            "B",
            "mobile",
            "outbound",
            "0.012000",
            "0",
            1,
            1,
        ),
        r(
            "1800",
            "US",
            "United States - Toll-free",
            "A",
            "tollfree",
            "outbound",
            "0.000000",
            "0",
            1,
            1,
        ),
        r(
            "1900",
            "US",
            "United States - Premium",
            "D",
            "premium",
            "outbound",
            "1.200000",
            "0.050000",
            1,
            1,
        ),
        r("44", "GB", "United Kingdom", "A", "geographic", "outbound", "0.060000", "0", 1, 1),
        r(
            "447",
            "GB",
            "United Kingdom - Mobile",
            "B",
            "mobile",
            "outbound",
            "0.120000",
            "0.010000",
            1,
            1,
        ),
        r("49", "DE", "Germany", "A", "geographic", "outbound", "0.030000", "0", 1, 1),
        r("234", "NG", "Nigeria", "C", "geographic", "outbound", "0.180000", "0", 1, 1),
        r(
            "33",
            "FR",
            "France",
            "A",
            "geographic",
            "outbound",
            "0.060000",
            "0",
            1,
            1,
            "",
            "2026-12-01",
        ),
        r(
            "33",
            "FR",
            "France",
            "A",
            "geographic",
            "outbound",
            "0.030000",
            "0",
            1,
            1,
            "2026-12-01",
            "",
        ),
        r(
            "1",
            "US",
            "Toll-free from United States/Canada",
            "A",
            "geographic",
            "tollfree_inbound",
            "0.024000",
            "0",
            1,
            1,
        ),
        r(
            "44",
            "GB",
            "Toll-free from United Kingdom",
            "A",
            "geographic",
            "tollfree_inbound",
            "0.048000",
            "0",
            1,
            1,
        ),
    ]


def write_csv(path: Path, rows: list[dict]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=HEADER, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    path.write_text(buf.getvalue(), encoding="utf-8")


# ---------------------------------------------------------------------------
# Sample CDRs
# ---------------------------------------------------------------------------
TENANTS = {
    "contoso": {
        "did": "+14255550100",
        "tf": ["+18005550100", "+18885550123"],
        "users": ["ann@contoso.com", "bob@contoso.com", "carol@contoso.com"],
    },
    "fabrikam": {
        "did": "+442071838750",
        "tf": ["+448000418100"],
        "users": ["dave@fabrikam.com", "erin@fabrikam.com"],
    },
    "northwind": {
        "did": "+4930901820",
        "tf": ["+18445550199"],
        "users": ["frank@northwind.example", "grace@northwind.example"],
    },
}

# (weight, national template): each 'N' is a random digit 0-9, 'X' 2-9.
DESTS: list[tuple[int, str]] = [
    (14, "1206XXXNNNN"),
    (10, "1212XXXNNNN"),
    (6, "1415XXXNNNN"),
    (6, "1416XXXNNNN"),
    (4, "1604XXXNNNN"),
    (3, "1787XXXNNNN"),
    (2, "1876XXXNNNN"),
    (2, "1242XXXNNNN"),
    (3, "1800XXXNNNN"),
    (2, "1888XXXNNNN"),
    (1, "1900XXXNNNN"),
    (10, "4420XNNNNNNN"),
    (4, "44161XNNNNNN"),
    (8, "447XNNNNNNNN"),
    (1, "447624NNNNNN"),
    (1, "448004NNNNNN"),
    (1, "449098NNNNNN"),
    (6, "331XNNNNNNN"),
    (5, "336NNNNNNNN"),
    (1, "338005NNNNNN"),
    (1, "3389NNNNNNN"),
    (6, "4930XNNNNNNN"),
    (4, "4917NNNNNNNN"),
    (1, "49800NNNNNNN"),
    (1, "49900NNNNNNN"),
    (3, "3491XNNNNNNN"),
    (2, "346NNNNNNNN"),
    (3, "3906XNNNNNN"),
    (2, "393NNNNNNNNN"),
    (3, "3120XNNNNNN"),
    (2, "316NNNNNNNN"),
    (2, "4144XNNNNNN"),
    (2, "3531XNNNNNN"),
    (4, "9111XNNNNNNN"),
    (5, "919NNNNNNNNN"),
    (2, "9180XNNNNNNN"),
    (3, "8610XNNNNNNN"),
    (3, "8613NNNNNNNNN"),
    (3, "813XNNNNNNN"),
    (2, "8190NNNNNNNN"),
    (3, "612XNNNNNNN"),
    (2, "614NNNNNNNN"),
    (2, "6562NNNNNN"),
    (2, "6591NNNNNN"),
    (2, "5511XNNNNNNN"),
    (3, "55119NNNNNNNN"),
    (2, "5255XNNNNNNN"),
    (2, "549114NNNNNNN"),
    (2, "2348NNNNNNNNN"),
    (1, "2341XNNNNNN"),
    (2, "27115NNNNNN"),
    (1, "2782NNNNNNN"),
    (2, "2547NNNNNNNN"),
    (1, "2010NNNNNNNN"),
    (2, "639NNNNNNNNN"),
    (1, "62812NNNNNNN"),
    (1, "8210NNNNNNNN"),
    (1, "84912NNNNNN"),
    (1, "905NNNNNNNNN"),
    (1, "79NNNNNNNNN"),
    (1, "7701NNNNNNN"),
    (1, "97150NNNNNNN"),
    (1, "9725XNNNNNNN"),
    (1, "5999XNNNNNN"),
    (1, "8816NNNNNNNN"),
    (1, "870NNNNNNNNN"),
    (1, "290NNNNN"),
    (1, "6723NNNNN"),
    (1, "2999NNNNN"),
    (1, "3522NNNNNN"),
    (1, "38050NNNNNNN"),
    (1, "4822XNNNNNN"),
]
CALLERS: list[tuple[int, str]] = [
    (10, "1425XXXNNNN"),
    (6, "1312XXXNNNN"),
    (3, "1514XXXNNNN"),
    (5, "4420XNNNNNNN"),
    (5, "447XNNNNNNNN"),
    (3, "331XNNNNNNN"),
    (3, "337NNNNNNNN"),
    (3, "4989XNNNNNNN"),
    (3, "4915NNNNNNNNN"),
    (2, "612XNNNNNNN"),
    (2, "614NNNNNNNN"),
    (2, "813XNNNNNNN"),
    (1, "8180NNNNNNNN"),
    (2, "3531XNNNNNN"),
    (1, "9111XNNNNNNN"),
    (1, "5511XNNNNNNN"),
    (1, "6562NNNNNN"),
    (1, "4144XNNNNNN"),
]


def _number(rng: random.Random, table) -> str:
    tpl = rng.choices([t for _, t in table], weights=[w for w, _ in table])[0]
    return "+" + "".join(
        str(rng.randint(2, 9)) if c == "X" else str(rng.randint(0, 9)) if c == "N" else c
        for c in tpl
    )


def _ts(t: dt.datetime, offset_h: int, ms: bool) -> str:
    t = t.astimezone(dt.timezone(dt.timedelta(hours=offset_h)))
    s = t.strftime("%Y-%m-%dT%H:%M:%S")
    if ms:
        s += f".{t.microsecond // 1000:03d}"
    return s + ("Z" if offset_h == 0 else t.strftime("%z")[:3] + ":" + t.strftime("%z")[3:])


def build_cdrs(n: int = 200, seed: int = 20261124) -> list[str]:
    rng = random.Random(seed)
    utc = dt.timezone.utc
    t0 = dt.datetime(2026, 11, 23, 0, 0, tzinfo=utc)
    span = int((dt.datetime(2027, 1, 1, tzinfo=utc) - t0).total_seconds())
    lines: list[str] = []
    for i in range(1, n + 1):
        tenant = rng.choice(sorted(TENANTS))
        info = TENANTS[tenant]
        user = rng.choice(info["users"])
        kind = rng.choices(
            ["user_outbound", "conference_dialout", "tollfree_inbound", "inbound"],
            weights=[62, 15, 13, 10],
        )[0]
        if kind in ("user_outbound", "conference_dialout"):
            frm, to = info["did"], _number(rng, DESTS)
        elif kind == "tollfree_inbound":
            frm, to = _number(rng, CALLERS), rng.choice(info["tf"])
        else:
            frm, to = _number(rng, CALLERS + DESTS[:20]), info["did"]
        # office-hours-ish start, whole seconds
        start = t0 + dt.timedelta(seconds=rng.randrange(span))
        start = start.replace(hour=rng.choice([8, 9, 10, 11, 13, 14, 15, 16, 17, 19]))
        r = rng.random()
        if r < 0.04:
            dur_ms = 0  # never answered
        elif r < 0.30:
            dur_ms = rng.randint(1_000, 59_999)  # short
        elif r < 0.90:
            dur_ms = rng.randint(60_000, 1_200_000)  # typical
        else:
            dur_ms = rng.randint(1_200_000, 7_200_000)  # long conference
        if rng.random() < 0.6:
            dur_ms -= dur_ms % 1000  # whole seconds
        end = start + dt.timedelta(milliseconds=dur_ms)
        off = 1 if rng.random() < 0.18 else 0
        cdr = {
            "call_id": f"c{i:04d}",
            "tenant_id": tenant,
            "user_id": user,
            "kind": kind,
            "from": frm,
            "to": to,
            "start": _ts(start, off, False),
            "end": _ts(end, off, dur_ms % 1000 != 0),
        }
        lines.append(json.dumps(cdr))

    def cdr(cid, kind, frm, to, start, end, **extra):
        d = {
            "call_id": cid,
            "tenant_id": "contoso",
            "user_id": "ann@contoso.com",
            "kind": kind,
            "from": frm,
            "to": to,
            "start": start,
            "end": end,
        }
        d.update(extra)
        return json.dumps(d)

    # Hand-written edge cases, inserted at fixed positions (line numbers are
    # 1-based positions in the final file).
    special = [
        (
            5,
            cdr(
                "e-boundary-utc",
                "user_outbound",
                "+14255550100",
                "+442071234567",
                "2026-11-30T23:59:30Z",
                "2026-12-01T00:02:30Z",
            ),
        ),  # old GB rate (start)
        (
            9,
            cdr(
                "e-boundary-offset",
                "user_outbound",
                "+14255550100",
                "+4930901820",
                "2026-12-01T00:30:00+01:00",
                "2026-12-01T00:45:00+01:00",
            ),
        ),  # = Nov 30 23:30Z
        (
            13,
            cdr(
                "e-new-rate",
                "conference_dialout",
                "+14255550100",
                "+4930901820",
                "2026-12-01T00:00:00Z",
                "2026-12-01T00:10:00.500Z",
            ),
        ),
        (17, '{"call_id": "e-bad-json", "kind": "user_outbound", "from": "+14255550100", "to": '),
        (
            21,
            json.dumps(
                {
                    "call_id": "e-missing-to",
                    "tenant_id": "contoso",
                    "user_id": "bob@contoso.com",
                    "kind": "user_outbound",
                    "from": "+14255550100",
                    "start": "2026-12-02T10:00:00Z",
                    "end": "2026-12-02T10:01:00Z",
                }
            ),
        ),
        (
            25,
            cdr(
                "e-bad-number",
                "user_outbound",
                "+14255550100",
                "0044 20 7123 4567",
                "2026-12-02T11:00:00Z",
                "2026-12-02T11:05:00Z",
            ),
        ),
        (
            29,
            cdr(
                "e-short-number",
                "conference_dialout",
                "+14255550100",
                "+4412",
                "2026-12-02T11:10:00Z",
                "2026-12-02T11:12:00Z",
            ),
        ),
        (
            33,
            cdr(
                "e-null-from",
                "user_outbound",
                None,
                "+33142685300",
                "2026-12-02T12:00:00Z",
                "2026-12-02T12:01:00Z",
            ),
        ),
        (
            37,
            cdr(
                "e-no-zone",
                "user_outbound",
                "+14255550100",
                "+33142685300",
                "2026-12-03T10:00:00",
                "2026-12-03T10:04:00",
            ),
        ),
        (
            41,
            cdr(
                "e-unknown-kind",
                "voicemail",
                "+14255550100",
                "+14255550199",
                "2026-12-03T10:10:00Z",
                "2026-12-03T10:11:00Z",
            ),
        ),
        (
            45,
            cdr(
                "e-no-rate",
                "user_outbound",
                "+14255550100",
                "+2891234567",
                "2026-12-03T11:00:00Z",
                "2026-12-03T11:03:00Z",
            ),
        ),  # 289: spare code
        (49, ""),  # blank line
        (53, '["not", "an", "object"]'),
        (
            57,
            cdr(
                "e-negative",
                "user_outbound",
                "+14255550100",
                "+442071234567",
                "2026-12-04T10:05:00Z",
                "2026-12-04T10:04:00Z",
            ),
        ),
        (
            61,
            cdr(
                "e-zero",
                "user_outbound",
                "+14255550100",
                "+442071234567",
                "2026-12-04T10:10:00Z",
                "2026-12-04T10:10:00Z",
            ),
        ),
        (
            65,
            cdr(
                "e-inbound-anon",
                "inbound",
                "anonymous",
                "+14255550100",
                "2026-12-04T10:20:00Z",
                "2026-12-04T10:25:00Z",
            ),
        ),  # free, not checked
        (
            69,
            cdr(
                "e-tf-uk-mobile",
                "tollfree_inbound",
                "+447700900123",
                "+18005550100",
                "2026-11-30T22:00:00Z",
                "2026-11-30T22:07:12.345Z",
            ),
        ),
        (
            73,
            cdr(
                "e-satellite",
                "conference_dialout",
                "+14255550100",
                "+881631234567",
                "2026-12-05T09:00:00Z",
                "2026-12-05T09:02:01Z",
            ),
        ),
        (
            77,
            cdr(
                "e-premium",
                "user_outbound",
                "+14255550100",
                "+19005550123",
                "2026-12-05T09:30:00+01:00",
                "2026-12-05T09:31:00+01:00",
            ),
        ),
        (
            81,
            json.dumps(
                {
                    "call_id": "e-no-tenant",
                    "kind": "user_outbound",
                    "from": "+14255550100",
                    "to": "+61291234567",
                    "start": "2026-12-05T10:00:00Z",
                    "end": "2026-12-05T10:00:42Z",
                }
            ),
        ),
    ]
    for pos, line in special:
        lines.insert(pos - 1, line)
    return lines


# ---------------------------------------------------------------------------
# Validation (stdlib only)
# ---------------------------------------------------------------------------
DEC_RE = re.compile(r"^\d+(\.\d{1,6})?$")
ISO2_RE = re.compile(r"^[A-Z]{2}$")
E164_RE = re.compile(r"^\+\d{8,15}$")
KINDS = {"user_outbound", "conference_dialout", "tollfree_inbound", "inbound"}


def check_deck(path: Path) -> list[dict]:
    errors: list[str] = []
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader)
        if sorted(header) != sorted(HEADER) or len(header) != 13:
            errors.append(f"{path}:1: bad header {header}")
        rows = []
        for lineno, rec in enumerate(reader, start=2):
            if len(rec) != 13:
                errors.append(f"{path}:{lineno}: {len(rec)} fields")
                continue
            row = dict(zip(header, rec))
            row["_line"] = lineno
            rows.append(row)
    currencies = set()
    windows: dict[tuple[str, str], list[tuple[dt.date, dt.date, int]]] = {}
    lo_d, hi_d = dt.date.min, dt.date.max
    for row in rows:
        ln = f"{path}:{row['_line']}"
        if not row["prefix"].isdigit() or not row["prefix"].isascii():
            errors.append(f"{ln}: prefix {row['prefix']!r}")
        if not ISO2_RE.match(row["country"]):
            errors.append(f"{ln}: country {row['country']!r}")
        if not row["destination"].strip():
            errors.append(f"{ln}: empty destination")
        if row["zone"] not in ("A", "B", "C", "D"):
            errors.append(f"{ln}: zone {row['zone']!r}")
        if row["number_type"] not in ("geographic", "mobile", "tollfree", "premium", "other"):
            errors.append(f"{ln}: number_type {row['number_type']!r}")
        if row["service"] not in ("", "outbound", "tollfree_inbound"):
            errors.append(f"{ln}: service {row['service']!r}")
        for col in ("rate_per_minute", "connection_fee"):
            if not DEC_RE.match(row[col]):
                errors.append(f"{ln}: {col} {row[col]!r}")
        for col in ("first_increment", "next_increment"):
            if not row[col].isdigit() or int(row[col]) < 1:
                errors.append(f"{ln}: {col} {row[col]!r}")
        currencies.add(row["currency"])
        try:
            frm = dt.date.fromisoformat(row["effective_from"]) if row["effective_from"] else lo_d
            to = dt.date.fromisoformat(row["effective_to"]) if row["effective_to"] else hi_d
        except ValueError as e:
            errors.append(f"{ln}: date {e}")
            continue
        if frm >= to:
            errors.append(f"{ln}: empty window {frm}..{to}")
        key = (row["prefix"], row["service"] or "outbound")
        for f2, t2, l2 in windows.get(key, []):
            if frm < t2 and f2 < to:
                errors.append(f"{ln}: overlaps line {l2} for {key}")
        windows.setdefault(key, []).append((frm, to, row["_line"]))
    if currencies != {CURRENCY}:
        errors.append(f"{path}: currencies {currencies}")
    if errors:
        raise SystemExit("\n".join(errors))
    return rows


def lookup(rows: list[dict], service: str, number: str, when: dt.datetime) -> dict | None:
    day = when.astimezone(dt.timezone.utc)
    best = None
    for row in rows:
        if (row["service"] or "outbound") != service or not number.startswith(row["prefix"]):
            continue
        if row["effective_from"] and day < dt.datetime.fromisoformat(row["effective_from"]).replace(
            tzinfo=dt.timezone.utc
        ):
            continue
        if row["effective_to"] and day >= dt.datetime.fromisoformat(row["effective_to"]).replace(
            tzinfo=dt.timezone.utc
        ):
            continue
        if best is None or len(row["prefix"]) > len(best["prefix"]):
            best = row
    return best


def check_cdrs(path: Path, deck: list[dict]) -> dict[str, int]:
    """Classify each line the way section 2/3 of the contracts would."""
    counts: dict[str, int] = {}
    for raw in path.read_text(encoding="utf-8").split("\n")[:-1]:
        if not raw.strip():
            counts["(blank)"] = counts.get("(blank)", 0) + 1
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError:
            status = "invalid:invalid_json"
        else:
            status = _classify(obj, deck)
        counts[status] = counts.get(status, 0) + 1
    return counts


def _classify(obj, deck) -> str:
    if not isinstance(obj, dict):
        return "invalid:not_an_object"
    for f in ("call_id", "kind", "from", "to", "start", "end"):
        if f not in obj:
            return f"invalid:missing_field:{f}"
    if obj["kind"] not in KINDS:
        return "invalid:bad_field:kind"
    try:
        start = dt.datetime.fromisoformat(obj["start"].replace("Z", "+00:00"))
        end = dt.datetime.fromisoformat(obj["end"].replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        return "invalid:bad_field:start"
    if start.tzinfo is None or end.tzinfo is None:
        return "invalid:bad_field:start"
    if obj["kind"] == "inbound":
        return "free"
    for f in ("from", "to"):
        if not isinstance(obj[f], str) or not E164_RE.match(obj[f]):
            return "invalid:bad_number"
    if obj["kind"] == "tollfree_inbound":
        row = lookup(deck, "tollfree_inbound", obj["from"][1:], start)
    else:
        row = lookup(deck, "outbound", obj["to"][1:], start)
    return f"rated:{row['number_type']}" if row else "unrated:no_rate"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out-dir", type=Path, default=RATES_DIR)
    ap.add_argument("--check", action="store_true", help="only validate the files")
    args = ap.parse_args(argv)
    out: Path = args.out_dir
    if not args.check:
        out.mkdir(parents=True, exist_ok=True)
        write_csv(out / "sample-deck.csv", build_sample_deck())
        write_csv(out / "test-deck.csv", build_test_deck())
        (out / "sample-cdrs.jsonl").write_text("\n".join(build_cdrs()) + "\n", encoding="utf-8")
    deck = check_deck(out / "sample-deck.csv")
    check_deck(out / "test-deck.csv")
    by = {}
    for row in deck:
        k = (row["service"], row["number_type"])
        by[k] = by.get(k, 0) + 1
    print(f"sample-deck.csv: {len(deck)} rows")
    for k in sorted(by):
        print(f"  {k[0]:<17} {k[1]:<11} {by[k]}")
    counts = check_cdrs(out / "sample-cdrs.jsonl", deck)
    print("sample-cdrs.jsonl (expected outcome against sample-deck.csv):")
    for k in sorted(counts):
        print(f"  {k:<32} {counts[k]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
