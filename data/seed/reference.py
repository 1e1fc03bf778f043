"""Reference data of the demo generator: variation lives here, not in branches."""
from __future__ import annotations

import math

import numpy as np

# name, sku code, subcategories, median list price, price sigma, gross margin, commission,
# B2B affinity (weight of the category in business orders), share of vendors,
# p of the geometric consumer quantity (lower = more units per line)
CATEGORIES: tuple[tuple, ...] = (
    ("Electronics", "ELE", ("Headphones", "Laptops", "Smartphones", "Cameras", "Chargers"), 85, 0.95, 0.20, 0.07, 1.6, 0.10, 0.85),
    ("Fashion", "FAS", ("Dresses", "Sneakers", "Jackets", "Bags", "Jewelry"), 38, 0.60, 0.55, 0.15, 0.15, 0.16, 0.82),
    ("Home & Garden", "HOM", ("Cookware", "Lamps", "Bedding", "Garden Tools", "Rugs"), 42, 0.80, 0.42, 0.12, 0.7, 0.12, 0.80),
    ("Beauty & Health", "BEA", ("Skincare", "Fragrances", "Makeup", "Supplements"), 21, 0.60, 0.52, 0.12, 0.2, 0.09, 0.70),
    ("Sports & Outdoors", "SPO", ("Running Shoes", "Yoga Mats", "Tents", "Bike Parts"), 44, 0.80, 0.40, 0.10, 0.4, 0.08, 0.82),
    ("Toys & Baby", "TOY", ("Building Sets", "Board Games", "Strollers", "Plush Toys"), 29, 0.65, 0.38, 0.11, 0.15, 0.07, 0.80),
    ("Books & Media", "BOO", ("Novels", "Cookbooks", "Vinyl Records", "Comics"), 16, 0.45, 0.32, 0.15, 0.3, 0.06, 0.75),
    ("Grocery", "GRO", ("Coffee", "Tea", "Snacks", "Olive Oil"), 11, 0.55, 0.26, 0.08, 0.6, 0.07, 0.50),
    ("Automotive", "AUT", ("Car Care", "Tyres", "Dash Cams", "Tools"), 52, 0.90, 0.33, 0.09, 1.0, 0.05, 0.75),
    ("Office Supplies", "OFF", ("Paper", "Printer Ink", "Desk Chairs", "Notebooks"), 24, 0.80, 0.36, 0.08, 4.5, 0.07, 0.60),
    ("Industrial & Lab", "IND", ("Safety Gear", "Fasteners", "Lab Equipment", "Packaging"), 60, 1.00, 0.30, 0.06, 6.0, 0.06, 0.65),
    ("Pet Supplies", "PET", ("Dog Food", "Cat Litter", "Pet Beds", "Aquariums"), 23, 0.60, 0.40, 0.10, 0.2, 0.07, 0.60),
)
VENDOR_WORDS = {
    "Electronics": ("Electronics", "Audio", "Tech", "Devices"),
    "Fashion": ("Apparel", "Style", "Threads", "Wear"),
    "Home & Garden": ("Home", "Living", "Garden", "Interiors"),
    "Beauty & Health": ("Beauty", "Cosmetics", "Wellness", "Care"),
    "Sports & Outdoors": ("Sports", "Outdoor", "Athletics", "Trail"),
    "Toys & Baby": ("Toys", "Kids", "Play", "Baby"),
    "Books & Media": ("Books", "Media", "Press", "Records"),
    "Grocery": ("Foods", "Pantry", "Roasters", "Market"),
    "Automotive": ("Auto", "Motors", "Parts", "Garage"),
    "Office Supplies": ("Office", "Paper", "Supplies", "Workspace"),
    "Industrial & Lab": ("Industrial", "Labware", "Safety", "Tools"),
    "Pet Supplies": ("Pets", "Paws", "Animal Care", "Pet Supply"),
}
BRAND_HEADS = ("Al", "Bel", "Cor", "Dra", "El", "Fen", "Gal", "Hal", "Ir", "Jun", "Kel", "Lum", "Mar",
               "Nor", "Or", "Pel", "Quin", "Ros", "Sol", "Tor", "Ul", "Val", "Wen", "Xan", "Yor", "Zel")
BRAND_TAILS = ("a", "o", "is", "en", "ar", "ix", "um", "ia", "ex", "on")
PRODUCT_ADJECTIVES = ("Classic", "Pro", "Eco", "Smart", "Compact", "Premium", "Essential", "Ultra",
                      "Urban", "Nordic", "Vintage", "Active", "Lite", "Max", "Fresh", "Studio")

# country, region, name group, legal suffix, share of customers, share of vendors
COUNTRIES: tuple[tuple, ...] = (
    ("DE", "Europe", "de", "GmbH", 0.16, 0.22),
    ("GB", "Europe", "en", "Ltd", 0.11, 0.12),
    ("FR", "Europe", "fr", "SAS", 0.10, 0.10),
    ("NL", "Europe", "nl", "B.V.", 0.05, 0.07),
    ("ES", "Europe", "es", "S.L.", 0.05, 0.05),
    ("IT", "Europe", "it", "S.r.l.", 0.05, 0.06),
    ("PL", "Europe", "pl", "sp. z o.o.", 0.03, 0.05),
    ("SE", "Europe", "se", "AB", 0.02, 0.04),
    ("US", "North America", "en", "Inc.", 0.21, 0.15),
    ("CA", "North America", "en", "Inc.", 0.04, 0.03),
    ("AU", "APAC", "en", "Pty Ltd", 0.05, 0.03),
    ("JP", "APAC", "jp", "K.K.", 0.05, 0.03),
    ("SG", "APAC", "en", "Pte. Ltd.", 0.02, 0.02),
    ("BR", "LATAM", "br", "Ltda.", 0.04, 0.02),
    ("MX", "LATAM", "es", "S.A. de C.V.", 0.02, 0.01),
)
# (first names, last names) per name group
NAMES = {
    "de": ("Anna Lukas Marie Felix Sophie Jonas Laura Paul Lena Maximilian Hannah Leon",
           "Müller Schmidt Schneider Fischer Weber Meyer Wagner Becker Hoffmann Schulz Koch Richter"),
    "en": ("Oliver Emma James Olivia Jack Amelia Noah Isla Liam Ava Harry Grace",
           "Smith Johnson Brown Taylor Wilson Davies Evans Clarke Walker Wright Miller Thompson"),
    "fr": ("Louis Camille Hugo Chloé Lucas Léa Gabriel Manon Arthur Inès Jules Zoé",
           "Martin Bernard Dubois Thomas Robert Richard Petit Durand Leroy Moreau Simon Laurent"),
    "es": ("Lucía Hugo Martina Daniel Sofía Alejandro Valeria Pablo Carmen Diego Elena Javier",
           "García Rodríguez González Fernández López Martínez Sánchez Pérez Gómez Ruiz Díaz Torres"),
    "it": ("Giulia Marco Chiara Luca Francesca Matteo Sara Andrea Elena Davide Alessia Simone",
           "Rossi Russo Ferrari Esposito Bianchi Romano Colombo Ricci Marino Greco Bruno Gallo"),
    "nl": ("Daan Emma Sem Julia Lucas Tess Finn Sara Milan Anna Jesse Noor",
           "de Jong Jansen de Vries van den Berg Bakker Visser Smit Meijer de Boer Mulder Bos Vos"),
    "pl": ("Jan Zuzanna Antoni Julia Jakub Maja Szymon Hanna Filip Oliwia Kacper Lena",
           "Nowak Kowalski Wiśniewski Wójcik Kowalczyk Kamiński Lewandowski Zieliński Szymański Woźniak Dąbrowski Mazur"),
    "se": ("Elsa William Alice Hugo Maja Lucas Vera Oscar Ebba Liam Saga Axel",
           "Andersson Johansson Karlsson Nilsson Eriksson Larsson Olsson Persson Svensson Gustafsson Pettersson Jonsson"),
    "jp": ("Haruto Yui Sota Hina Riku Mei Yuto Aoi Kaito Sakura Ren Yuna",
           "Sato Suzuki Takahashi Tanaka Watanabe Ito Yamamoto Nakamura Kobayashi Kato Yoshida Yamada"),
    "br": ("Miguel Helena Arthur Alice Gael Laura Heitor Valentina Theo Sophia Davi Manuela",
           "Silva Santos Oliveira Souza Rodrigues Ferreira Alves Pereira Lima Gomes Costa Ribeiro"),
}
# Dutch surnames have spaces: split them on the two-letter particles by hand.
NL_LAST = ("de Jong", "Jansen", "de Vries", "van den Berg", "Bakker", "Visser", "Smit", "Meijer",
           "de Boer", "Mulder", "Bos", "Vos")
BUSINESS_WORDS = ("Logistics", "Consulting", "Retail", "Dental", "Architects", "Engineering",
                  "Hospitality", "Media", "Facilities", "Labs", "Construction", "Trading")

# acquisition channel, share of consumers, share of businesses, drop-out multiplier,
# cost per acquired customer in EUR (0: not a paid channel)
ACQUISITION: tuple[tuple, ...] = (
    ("organic", 0.34, 0.10, 1.00, 0),
    ("paid_search", 0.22, 0.08, 1.10, 32),
    ("social", 0.14, 0.02, 1.25, 26),
    ("affiliate", 0.09, 0.00, 1.15, 19),
    ("email", 0.08, 0.05, 0.85, 0),
    ("referral", 0.13, 0.25, 0.80, 0),
    ("sales", 0.00, 0.50, 0.70, 0),
)
# channel -> (campaign, share of the channel's spend, first and last (month, day) or None)
CAMPAIGNS = {
    "paid_search": (("brand", 0.25, None), ("generic", 0.50, None), ("shopping", 0.25, None)),
    "social": (("prospecting", 0.60, None), ("retargeting", 0.40, None),
               ("holiday_push", 0.45, ((11, 10), (12, 24)))),
    "affiliate": (("cashback", 0.55, None), ("content", 0.45, None)),
}

# Segments of the generator: consumers place B2C and B2B2C orders, businesses B2B orders.
CONSUMER, BUSINESS = 0, 1
# Mon..Sun order intensity.
WEEKDAY = ((0.94, 0.92, 0.93, 0.96, 1.00, 1.12, 1.13), (1.22, 1.25, 1.24, 1.20, 1.02, 0.10, 0.07))
# Jan..Dec order intensity (interpolated smoothly between mid-months).
MONTH = ((0.93, 0.86, 0.94, 0.95, 0.97, 0.93, 0.92, 0.92, 0.98, 1.02, 1.17, 1.33),
         (0.97, 1.00, 1.06, 1.00, 1.00, 1.00, 0.90, 0.82, 1.05, 1.07, 1.06, 0.80))
GROWTH = (math.log(1.28), math.log(1.40))  # per year
# Hour-of-day weights (local time): consumers on weekdays, consumers at weekends, businesses.
HOURS = (
    (0.6, 0.35, 0.2, 0.15, 0.15, 0.25, 0.6, 1.2, 1.8, 2.2, 2.5, 2.7, 3.2, 3.1, 2.8, 2.7, 2.8, 3.0, 3.4, 4.2, 4.8, 4.6, 3.5, 1.8),
    (0.9, 0.6, 0.35, 0.2, 0.15, 0.2, 0.35, 0.7, 1.4, 2.3, 3.0, 3.3, 3.4, 3.3, 3.2, 3.1, 3.1, 3.2, 3.4, 3.9, 4.3, 4.1, 3.2, 1.9),
    (0.05, 0.03, 0.02, 0.02, 0.03, 0.1, 0.4, 1.5, 3.6, 4.8, 5.2, 4.9, 3.6, 4.2, 4.9, 4.7, 4.0, 2.8, 1.5, 0.8, 0.5, 0.35, 0.2, 0.1),
)
# BG/NBD priors per segment, in operational days: gamma shape and mean of the purchase rate,
# beta (a, b) of the drop-out probability, highest rate allowed.
RATE_SHAPE = (0.85, 1.6)
RATE_MEAN = (1 / 80, 1 / 90)
DROPOUT = ((1.3, 2.6), (1.2, 4.0))
RATE_CAP = (1 / 3, 1 / 2)
BUSINESS_ORDER_SHARE = 0.11
B2B2C_SHARE = 0.08          # of consumer orders, placed through partner apps (marketplace_api)
NEVER_BOUGHT = 0.15         # signed-up customers without an order, per purchasing customer
NEVER_BOUGHT_B2B = 0.08     # share of businesses among them
CANCEL = (0.032, 0.02)      # per order
RETURN = (0.07, 0.03)      # per order older than RETURN_AFTER days
RETURN_AFTER = 8
FULL_RETURN = 0.5
# business channel mix and payment methods per (business model, channel)
B2B_LINE_BUDGET = 85        # EUR, median value a business line aims at
B2B_CHANNELS = (("sales_rep", 0.45), ("marketplace_api", 0.35), ("web", 0.20))
PAYMENTS = {
    ("B2C", "web"): (("card", 0.48), ("paypal", 0.30), ("klarna", 0.14), ("apple_pay", 0.08)),
    ("B2C", "mobile"): (("card", 0.33), ("paypal", 0.24), ("apple_pay", 0.28), ("google_pay", 0.15)),
    ("B2B2C", "marketplace_api"): (("card", 0.6), ("paypal", 0.4)),
    ("B2B", "web"): (("invoice", 0.75), ("card", 0.25)),
    ("B2B", "sales_rep"): (("invoice", 1.0),),
    ("B2B", "marketplace_api"): (("invoice", 0.95), ("card", 0.05)),
}
# region -> (shipping fee, free from order value) for consumer orders; businesses pay freight.
SHIPPING = {"Europe": (4.99, 49), "North America": (7.99, 75), "APAC": (12.99, 99), "LATAM": (12.99, 99)}
B2B_FREIGHT = (19.90, 500)
# Conversion of web and mobile sessions, before seasonality and noise; always kept in the bounds.
CONVERSION = {"web": 0.029, "mobile": 0.021}
CONVERSION_BOUNDS = (0.017, 0.037)

REGIONS = ("Europe", "North America", "APAC", "LATAM")
COUNTRY_REGION = np.array([REGIONS.index(c[1]) for c in COUNTRIES], np.int8)
PAYMENT_METHODS = tuple(sorted({m for opts in PAYMENTS.values() for m, _ in opts}))
ORDER_ATTRS = [("status", "i1"), ("channel", "i1"), ("method", "i1"), ("payment", "i1"), ("fee", "i4")]
INVENTORY_WEEKS = 12
STATUSES = ("placed", "paid", "shipped", "delivered", "cancelled", "returned")
CHANNELS = ("web", "mobile", "marketplace_api", "sales_rep")
MODELS = ("B2C", "B2B", "B2B2C")
PAYMENT_STATUSES = ("captured", "failed", "refunded", "partially_refunded")
KPI_METRICS = ("gmv", "net_revenue", "orders", "aov", "new_customers", "conversion_rate", "gross_margin")
CONTRACT_TABLES = ("order_items", "orders", "inventory_snapshots", "products", "customers", "vendors",
                   "traffic_daily", "marketing_spend", "kpi_targets")
YEARS = 3                   # of data, up to the end day
