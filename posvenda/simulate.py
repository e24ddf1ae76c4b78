"""Deterministic, realistic post-sale traffic: visits, carts, checkouts, orders, messages and NPS.

Pure Python, no Kafka: `generate` yields `topics.events.Event`s in arrival order and the caller
publishes them (or `write_jsonl` writes the JSON ingest form). Everything is drawn from one
`random.Random(seed)`, event ids included, so the same arguments always give the same stream.

The default scenario, roughly (per session unless said):
  - ~60% view a product page, ~25% of those add to cart, about half of the carts choose a freight
    option, and a freight-driven drop before the payment choice; ~2-3% place an order. Two customers
    in three come back for more visits (recognised at once, or logging in at checkout).
  - credit card 55% / Pix 25% / boleto 20%; ~35% of boletos and ~15% of Pix charges are never paid
    (payment_expired, then order_cancelled with reason payment_not_made).
  - three problem products (PROBLEM_PRODUCTS) are returned 25-40% of the time, the rest ~4%;
    correios_pac delivers late far more often than the other carriers.

The "post-sale" scenario is for exercising everything after the sale: nearly every session with a
product view goes on to order, and half of the product views go to one problem product (FOCUS_PRODUCT,
returned ~35% of the time, mostly wrong size) during its first FOCUS_DAYS on sale, after which the
batch is withdrawn. Spread over weeks (a low `sessions_per_day`), that gives hundreds of orders,
deliveries and returns, a return-rate alert that raises while the batch sells and clears once its
deliveries have left the 30-day window, and boleto/Pix charges for the recovery cadences.

Disorder knobs: `late_fraction` of events arrive up to MAX_LATE_MS after their event time, and
`impossible_fraction` of orders carry one impossible transition (IMPOSSIBLE_KINDS). Events keep their
`occurred_at`; only their position in the stream changes.
"""
from __future__ import annotations

import bisect
import datetime as dt
import heapq
import itertools
import json
import math
import random
import unicodedata
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from topics.events import Event, to_json


class Weighted:
    """A fixed weighted choice, drawn with one uniform number."""

    __slots__ = ("cum", "total", "values")

    def __init__(self, pairs: Iterable[tuple[object, float]]):
        pairs = list(pairs)
        self.values = tuple(v for v, _ in pairs)
        self.cum = tuple(itertools.accumulate(w for _, w in pairs))
        self.total = self.cum[-1]

    def draw(self, rng: random.Random):
        return self.values[bisect.bisect_right(self.cum, rng.random() * self.total)]


SECOND_MS = 1000
MINUTE_MS = 60 * SECOND_MS
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS
BRT_OFFSET_MS = -3 * HOUR_MS  # Brasília time, no daylight saving since 2019

SCENARIOS = ("default", "post-sale")
DEFAULT_SESSIONS_PER_DAY = 5_000
MAX_LATE_MS = 5 * MINUTE_MS
IMPOSSIBLE_KINDS = ("delivered_before_shipped", "paid_twice", "event_after_cancelled")

# Funnel: probability of reaching a step given the previous one (before channel/device multipliers).
P_VIEW_PRODUCT = 0.60
P_CART_GIVEN_PRODUCT = 0.22
P_SHIPPING_GIVEN_CART = 0.55
P_PAYMENT_GIVEN_SHIPPING = 0.58  # minus a freight penalty: 1.5 x freight / subtotal
P_REGISTRATION_GIVEN_PAYMENT = 0.85
P_ORDER_GIVEN_REGISTRATION = 0.88
FOCUS_PRODUCT = "p-0007"  # post-sale scenario: the problem product whose batch is withdrawn
FOCUS_DAYS = 14
FOCUS_SHARE = 0.50  # of product views while it is on sale
# Returning customers: each new customer comes back for a few more visits (the next session to start
# after a return is due is theirs); recognised from the start, or logging in at checkout.
RETURN_VISITS = Weighted(((0, 35), (1, 25), (2, 18), (3, 10), (4, 7), (6, 5)))
P_RECOGNISED_ON_RETURN = 0.7
P_ORDER_STATUS_VISIT = 0.4  # after an order, a visit to follow it

PAYMENT_METHODS = Weighted((("credit_card", 55), ("pix", 25), ("boleto", 20)))
INSTALLMENTS = Weighted(((1, 35), (2, 10), (3, 12), (4, 6), (5, 6), (6, 8), (10, 12), (12, 11)))
MIN_INSTALLMENT_BRL = 30
PIX_EXPIRY_MS = Weighted(((30 * MINUTE_MS, 30), (HOUR_MS, 30), (2 * HOUR_MS, 15), (DAY_MS, 25)))
P_CARD_FAILED, P_CARD_RETRY_OK = 0.12, 0.5
P_PIX_PAID = 0.85
P_BOLETO_PAID = 0.65
BOLETO_CLEARING_MS = 3 * DAY_MS  # a boleto paid on its due date is confirmed up to 3 days later
HANDLING_DAYS = {"credit_card": 2, "pix": 2, "boleto": 5}  # added to the carrier's days in the promise
P_CANCEL_AFTER_PAID = {"customer_request": 0.015, "out_of_stock": 0.007}
BASELINE_RETURN_RATE = {"fashion": 0.06, "general": 0.03}
CARRIER_LATE_RATE = {"correios_sedex": 0.06, "correios_pac": 0.28, "jadlog": 0.12, "loggi": 0.08}
P_NPS_ANSWER = 0.28

@dataclass(frozen=True)
class Conversion:
    """Probabilities of reaching a funnel step given the previous one, and the products' share of views."""

    view_product: float
    cart_given_product: float
    shipping_given_cart: float
    payment_given_shipping: float
    registration_given_payment: float
    order_given_registration: float
    focus_share: float = 0.0  # of product views going to FOCUS_PRODUCT during its FOCUS_DAYS on sale


# --- reference data ---------------------------------------------------------------------------

_ANDROID = "Mozilla/5.0 (Linux; Android {v}; {m}) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{c} Mobile Safari/537.36"
_IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS {v} like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
           "Version/{s} Mobile/15E148 Safari/604.1")
# (user agent, device, weight): Android Chrome ~50%, iPhone Safari ~25%, desktop ~20%, tablets ~3%.
USER_AGENTS = Weighted(((ua, device), w) for ua, device, w in (
    (_ANDROID.format(v="10", m="K", c="124.0.0.0"), "mobile", 14),
    (_ANDROID.format(v="13", m="SM-A536E", c="120.0.6099.144"), "mobile", 9),
    (_ANDROID.format(v="12", m="moto g(60)", c="119.0.0.0"), "mobile", 7),
    (_ANDROID.format(v="13", m="23021RAAEG", c="121.0.6167.143"), "mobile", 6),
    (_ANDROID.format(v="11", m="SM-A125M", c="118.0.5993.111"), "mobile", 5),
    (_ANDROID.format(v="14", m="moto g84 5G", c="124.0.6367.82"), "mobile", 4),
    (("Mozilla/5.0 (Linux; Android 13; SM-S911B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/23.0 "
     "Chrome/115.0.0.0 Mobile Safari/537.36"), "mobile", 3),
    (_IPHONE.format(v="17_4_1", s="17.4.1"), "mobile", 11),
    (_IPHONE.format(v="16_6", s="16.6"), "mobile", 7),
    (_IPHONE.format(v="15_7_9", s="15.6.6"), "mobile", 3),
    (("Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
     "CriOS/120.0.6099.119 Mobile/15E148 Safari/604.1"), "mobile", 2),
    (("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 "
     "Safari/537.36"), "desktop", 10),
    (("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 "
     "Safari/537.36 Edg/124.0.2478.80"), "desktop", 4),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0", "desktop", 2),
    (("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 "
     "Safari/605.1.15"), "desktop", 3),
    ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/123.0.0.0 Safari/537.36",
     "desktop", 1),
    (("Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 "
     "Mobile/15E148 Safari/604.1"), "tablet", 2),
    (("Mozilla/5.0 (Linux; Android 13; SM-X200) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/122.0.0.0 "
     "Safari/537.36"), "tablet", 1),
))
P_APP_GIVEN_MOBILE = 0.2  # mobile sessions recorded by the app (source "app") rather than the web

# channel: (weight, conversion multiplier, utm sources, utm campaigns)
CHANNELS = {
    "direct": (22, 1.2, (), ()),
    "organic": (28, 1.0, (), ()),
    "paid_search": (18, 1.0, ("google", "bing"), ("search_marca", "search_generico", "shopping_ofertas")),
    "social": (10, 0.6, ("instagram", "facebook", "tiktok"), ("colecao_verao", "influenciadores", "remarketing")),
    "email": (5, 1.4, ("newsletter", "crm"), ("news_semanal", "carrinho_abandonado", "aniversario")),
    "whatsapp": (7, 1.3, (), ()),
    "referral": (4, 0.9, (), ()),
    "marketplace": (6, 1.1, (), ()),
}
CHANNEL_PICK = Weighted((name, spec[0]) for name, spec in CHANNELS.items())
DEVICE_CONVERSION = {"mobile": 0.9, "desktop": 1.35, "tablet": 1.0}

# UF: (weight, freight zone, ((city, DDD), ...)); weights follow Brazilian e-commerce orders (SP heavy).
UFS = {
    "SP": (42, 0, (("São Paulo", 11), ("São Paulo", 11), ("Campinas", 19), ("Guarulhos", 11), ("Santos", 13),
                   ("Ribeirão Preto", 16), ("Sorocaba", 15), ("São José dos Campos", 12))),
    "RJ": (13, 1, (("Rio de Janeiro", 21), ("Rio de Janeiro", 21), ("Niterói", 21), ("Duque de Caxias", 21),
                   ("Nova Iguaçu", 21), ("Petrópolis", 24))),
    "MG": (11.7, 1, (("Belo Horizonte", 31), ("Uberlândia", 34), ("Contagem", 31), ("Juiz de Fora", 32))),
    "RS": (5.5, 1, (("Porto Alegre", 51), ("Caxias do Sul", 54), ("Pelotas", 53))),
    "PR": (5, 1, (("Curitiba", 41), ("Londrina", 43), ("Maringá", 44))),
    "SC": (3.6, 1, (("Florianópolis", 48), ("Joinville", 47), ("Blumenau", 47))),
    "BA": (3.4, 2, (("Salvador", 71), ("Feira de Santana", 75))),
    "DF": (2.1, 2, (("Brasília", 61),)),
    "ES": (2, 1, (("Vitória", 27), ("Vila Velha", 27))),
    "GO": (2, 2, (("Goiânia", 62), ("Anápolis", 62))),
    "PE": (1.6, 2, (("Recife", 81), ("Jaboatão dos Guararapes", 81))),
    "CE": (1.3, 2, (("Fortaleza", 85),)),
    "PA": (1, 3, (("Belém", 91),)),
    "MT": (0.9, 2, (("Cuiabá", 65),)),
    "MA": (0.7, 2, (("São Luís", 98),)),
    "MS": (0.7, 2, (("Campo Grande", 67),)),
    "PB": (0.5, 2, (("João Pessoa", 83),)),
    "PI": (0.5, 2, (("Teresina", 86),)),
    "RN": (0.5, 2, (("Natal", 84),)),
    "AL": (0.4, 2, (("Maceió", 82),)),
    "SE": (0.3, 2, (("Aracaju", 79),)),
    "TO": (0.3, 3, (("Palmas", 63),)),
    "RO": (0.25, 3, (("Porto Velho", 69),)),
    "AM": (0.15, 3, (("Manaus", 92),)),
    "AC": (0.08, 3, (("Rio Branco", 68),)),
    "AP": (0.07, 3, (("Macapá", 96),)),
    "RR": (0.05, 3, (("Boa Vista", 95),)),
}
UF_PICK = Weighted((uf, spec[0]) for uf, spec in UFS.items())

# category: (weight, return profile, ((product noun, min price, max price), ...))
CATEGORIES = {
    "celulares": (8, "general", (("Smartphone Galaxy A15", 899, 1499), ("Smartphone Moto G54", 999, 1399),
                                 ("Smartphone Redmi Note 13", 1099, 1599), ("Capinha Antichoque", 29, 69),
                                 ("Carregador Turbo 25W", 59, 129), ("Película de Vidro 3D", 19, 49))),
    "eletronicos": (10, "general", (("Fone Bluetooth TWS", 79, 399), ("Caixa de Som Portátil", 129, 899),
                                    ("Smart TV 50 4K", 2199, 3299), ("Smartwatch Fit", 199, 899),
                                    ("Soundbar 2.1", 499, 1299))),
    "informatica": (8, "general", (("Notebook 15,6 i5", 2899, 4499), ("Mouse Sem Fio", 39, 149),
                                   ("Teclado Mecânico", 189, 499), ("Monitor 24 Full HD", 699, 1199),
                                   ("SSD 1TB NVMe", 349, 599), ("Headset Gamer", 149, 499))),
    "eletrodomesticos": (7, "general", (("Air Fryer 4L", 299, 699), ("Liquidificador 1200W", 129, 349),
                                        ("Cafeteira Expresso", 399, 1299), ("Aspirador Robô", 799, 2199),
                                        ("Micro-ondas 30L", 549, 999))),
    "moda": (14, "fashion", (("Camiseta Básica Algodão", 39, 89), ("Calça Jeans Slim", 119, 249),
                             ("Vestido Longo Estampado", 129, 299), ("Jaqueta Corta-Vento", 149, 349),
                             ("Moletom Canguru", 119, 259), ("Biquíni Cortininha", 79, 169))),
    "calcados": (10, "fashion", (("Tênis Casual Couro", 179, 399), ("Sandália Rasteira", 49, 129),
                                 ("Chinelo Slide", 39, 99), ("Bota Coturno", 199, 449), ("Sapatênis", 129, 279))),
    "casa": (12, "general", (("Jogo de Cama Casal 4 peças", 129, 349), ("Panela de Pressão 4,5L", 119, 299),
                             ("Jogo de Toalhas 5 peças", 89, 229), ("Organizador Multiuso", 29, 89),
                             ("Luminária de Mesa LED", 69, 199))),
    "beleza": (10, "general", (("Perfume Feminino 100ml", 149, 499), ("Kit Skincare Vitamina C", 79, 219),
                               ("Secador de Cabelo 2000W", 149, 399), ("Prancha Alisadora", 99, 349),
                               ("Protetor Solar FPS 50", 39, 99))),
    "esporte": (7, "general", (("Bicicleta Aro 29", 1199, 2499), ("Kit Halteres 10kg", 99, 249),
                               ("Tapete de Yoga", 59, 149), ("Garrafa Térmica 1L", 59, 149),
                               ("Bola de Futebol Campo", 79, 199))),
    "brinquedos": (6, "general", (("Blocos de Montar 500 peças", 89, 299), ("Boneca Articulada", 79, 199),
                                  ("Carrinho de Controle Remoto", 129, 349), ("Quebra-Cabeça 1000 peças", 49, 99))),
    "livros": (5, "general", (("Livro Romance Nacional", 29, 69), ("Box Fantasia 3 volumes", 89, 179),
                              ("Livro de Receitas", 49, 99), ("Livro Infantil Ilustrado", 29, 59))),
    "moveis": (3, "general", (("Cadeira de Escritório", 399, 1199), ("Rack para TV", 299, 899),
                              ("Estante 5 Prateleiras", 199, 499))),
}
VARIANTS = ("Preto", "Branco", "Azul", "Cinza", "Rosa", "Verde", "Vermelho", "Bege", "Pro", "Plus", "Max", "Lite")
RETURN_REASONS = {
    "fashion": (("wrong_size", 45), ("regret", 25), ("not_as_described", 15), ("defect", 10),
                ("damaged_in_transport", 5)),
    "general": (("regret", 40), ("defect", 30), ("not_as_described", 15), ("damaged_in_transport", 15)),
}
CATALOGUE_SIZE = 200
CATALOGUE_SEED = 20240501  # the catalogue is the same whatever the traffic seed
# product_id: (name, category, price, return rate, reasons, popularity rank)
PROBLEM_PRODUCTS = {
    "p-0007": ("Tênis Runner Pro", "calcados", 299.90, 0.35,
               (("wrong_size", 70), ("not_as_described", 15), ("defect", 10), ("regret", 5)), 2),
    "p-0023": ("Vestido Midi Floral", "moda", 189.90, 0.32,
               (("not_as_described", 60), ("wrong_size", 25), ("regret", 10), ("defect", 5)), 3),
    "p-0042": ("Jogo de Taças de Cristal 6 peças", "casa", 159.90, 0.28,
               (("damaged_in_transport", 75), ("defect", 10), ("regret", 10), ("not_as_described", 5)), 4),
}

FIRST_NAMES = {
    "f": ("Maria", "Ana", "Juliana", "Fernanda", "Patrícia", "Aline", "Camila", "Beatriz", "Larissa", "Gabriela",
          "Letícia", "Mariana", "Vanessa", "Bruna", "Francisca", "Adriana", "Luana", "Jéssica", "Sandra", "Raquel"),
    "m": ("José", "João", "Antônio", "Francisco", "Carlos", "Paulo", "Pedro", "Lucas", "Luiz", "Marcos",
          "Gabriel", "Rafael", "Daniel", "Marcelo", "Bruno", "Eduardo", "Felipe", "Rodrigo", "Thiago", "Matheus"),
}
SURNAMES = ("Silva", "Santos", "Oliveira", "Souza", "Rodrigues", "Ferreira", "Alves", "Pereira", "Lima", "Gomes",
            "Costa", "Ribeiro", "Martins", "Carvalho", "Almeida", "Lopes", "Soares", "Fernandes", "Vieira",
            "Barbosa", "Rocha", "Dias", "Nascimento", "Andrade", "Moreira", "Nunes", "Marques", "Machado",
            "Mendes", "Freitas", "Cardoso", "Ramos", "Gonçalves", "Santana", "Teixeira", "Araújo", "Cavalcanti")
EMAIL_DOMAINS = Weighted((("gmail.com", 55), ("hotmail.com", 18), ("outlook.com", 8), ("yahoo.com.br", 7),
                          ("uol.com.br", 4), ("bol.com.br", 4), ("icloud.com", 4)))
NPS_WEIGHTS = {  # weights of scores 0..10
    "happy": Weighted(enumerate((1, 1, 1, 1, 1, 3, 4, 8, 16, 22, 42))),
    "late": Weighted(enumerate((8, 4, 5, 5, 6, 9, 10, 14, 14, 12, 13))),
    "returned": Weighted(enumerate((10, 5, 6, 6, 7, 10, 10, 13, 12, 10, 11))),
}
NPS_COMMENTS = {
    "promoter": ("Entrega rápida, recomendo!", "Produto excelente, chegou antes do prazo.", "Ótimo atendimento."),
    "passive": ("Chegou certinho, mas a embalagem podia ser melhor.", "Bom, mas o frete é caro."),
    "detractor": ("Atrasou muito a entrega.", "Produto diferente do anunciado.", "Ninguém respondeu meu chamado."),
}
# order event type -> (message template, order phase)
PHASE_MESSAGES = {
    "order_placed": ("order_confirmation", "placed"),
    "payment_pending": ("payment_pending", "payment_pending"),
    "order_paid": ("payment_confirmed", "paid"),
    "order_invoiced": ("invoice_issued", "invoiced"),
    "order_shipped": ("order_shipped", "shipped"),
    "order_delivered": ("order_delivered", "delivered"),
    "order_cancelled": ("order_cancelled", "cancelled"),
}
TICKET_CHANNELS = Weighted((("whatsapp", 45), ("email", 30), ("chat", 15), ("phone", 5), ("social", 5)))
FIRST_RESPONSE_MS = {  # (min, max) time to the first answer, by channel
    "chat": (1 * MINUTE_MS, 20 * MINUTE_MS), "phone": (0, 5 * MINUTE_MS),
    "whatsapp": (5 * MINUTE_MS, 6 * HOUR_MS), "social": (30 * MINUTE_MS, 12 * HOUR_MS),
    "email": (1 * HOUR_MS, 30 * HOUR_MS),
}
HOURLY_SESSION_WEIGHTS = (3, 2, 1.2, 0.8, 0.6, 0.7, 1.2, 2.5, 4, 5, 5.5, 5.5,  # by hour of day, Brasília time
                          5.5, 5.5, 5.5, 5.5, 5.5, 5.5, 6, 7, 8, 8, 7, 5)

# --- small pure helpers ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Product:
    product_id: str
    name: str
    category: str
    price: float
    popularity: float
    return_rate: float
    return_reasons: Weighted
    path: str


def slug(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    return "-".join("".join(c if c.isalnum() else " " for c in ascii_text).split())


def cpf(rng: random.Random) -> str:
    """A random CPF with valid check digits, formatted 000.000.000-00."""
    digits = [rng.randrange(10) for _ in range(9)]
    if len(set(digits)) == 1:  # 111.111.111-11 and friends pass the check but are invalid
        digits[0] = (digits[0] + 1) % 10
    for size in (9, 10):
        rest = sum(d * (size + 1 - i) for i, d in enumerate(digits)) % 11
        digits.append(0 if rest < 2 else 11 - rest)
    s = "".join(map(str, digits))
    return f"{s[:3]}.{s[3:6]}.{s[6:9]}-{s[9:]}"


def phone(rng: random.Random, ddd: int) -> str:
    """A Brazilian mobile number: +55 DDD 9XXXX-XXXX."""
    n = rng.randrange(10**8)
    return f"+55 {ddd} 9{n // 10**4:04d}-{n % 10**4:04d}"


def _price(rng: random.Random, low: float, high: float) -> float:
    """Log-uniform in [low, high], ending in ,90 like shop prices."""
    value = math.exp(rng.uniform(math.log(low), math.log(high)))
    return round(max(1, round(value)) - 0.10, 2)


@cache
def catalogue() -> tuple[Product, ...]:
    """The ~200 products, fixed (CATALOGUE_SEED), with Zipf popularity; PROBLEM_PRODUCTS included."""
    rng = random.Random(CATALOGUE_SEED)
    problem_ranks = {spec[5] for spec in PROBLEM_PRODUCTS.values()}
    ranks = [r for r in range(1, CATALOGUE_SIZE + 1) if r not in problem_ranks]
    rng.shuffle(ranks)
    categories = Weighted((name, spec[0]) for name, spec in CATEGORIES.items())
    products = []
    for n in range(1, CATALOGUE_SIZE + 1):
        pid = f"p-{n:04d}"
        if pid in PROBLEM_PRODUCTS:
            name, category, price, rate, reasons, rank = PROBLEM_PRODUCTS[pid]
        else:
            category = categories.draw(rng)
            noun, low, high = rng.choice(CATEGORIES[category][2])
            name, price, rank = f"{noun} {rng.choice(VARIANTS)}", _price(rng, low, high), ranks.pop()
            profile = CATEGORIES[category][1]
            rate, reasons = BASELINE_RETURN_RATE[profile], RETURN_REASONS[profile]
        products.append(Product(pid, name, category, price, 1 / rank ** 0.9, rate, Weighted(reasons),
                                f"/p/{pid}/{slug(name)}"))
    return tuple(products)


SCENARIO_CONVERSION = {
    "default": Conversion(P_VIEW_PRODUCT, P_CART_GIVEN_PRODUCT, P_SHIPPING_GIVEN_CART, P_PAYMENT_GIVEN_SHIPPING,
                          P_REGISTRATION_GIVEN_PAYMENT, P_ORDER_GIVEN_REGISTRATION),
    "post-sale": Conversion(0.95, 0.75, 0.92, 0.92, 0.96, 0.96, focus_share=FOCUS_SHARE),
}


def _brt_midnight(ms: int) -> int:
    """UTC millis of the Brasília midnight that starts the local day of `ms`."""
    local = ms + BRT_OFFSET_MS
    return local - local % DAY_MS - BRT_OFFSET_MS


def _session_starts(rng: random.Random, start_ms: int, sessions_per_day: float) -> Iterator[int]:
    """Session start times: a Poisson process following the Brazilian daily curve (thinning)."""
    peak = max(HOURLY_SESSION_WEIGHTS)
    mean = sum(HOURLY_SESSION_WEIGHTS) / 24
    peak_rate_per_ms = sessions_per_day / DAY_MS * peak / mean
    t = float(start_ms)
    while True:
        t += rng.expovariate(peak_rate_per_ms)
        hour = int((t + BRT_OFFSET_MS) % DAY_MS // HOUR_MS)
        if rng.random() * peak < HOURLY_SESSION_WEIGHTS[hour]:
            yield int(t)


# --- the simulation -------------------------------------------------------------------------------


class Customer:
    __slots__ = ("city", "consents", "customer_id", "device", "orders", "ua", "uf")

    def __init__(self, customer_id, uf, city, ua, device, consents):
        self.customer_id, self.uf, self.city = customer_id, uf, city
        self.ua, self.device, self.consents, self.orders = ua, device, consents, 0


@dataclass
class _Visit:
    session_id: str
    user_agent: str
    source: str  # web or app
    device: str
    channel: str
    customer: Customer | None  # recognised from the start (returning) or after registration
    known: Customer | None  # the returning customer behind the visit, recognised or not
    uf: str  # where the visitor lives (used for freight before they identify themselves)
    city: str
    ddd: int


@dataclass(eq=False)
class _Order:
    order_id: str
    n: int
    session_id: str
    customer: Customer
    source: str
    items: list  # [(Product, quantity)]
    total: float
    freight: float
    method: str
    installments: int
    carrier: str
    promised_at: int
    promised_days: int
    zone: int
    late: bool = False
    delivered_at: int | None = None
    return_requested_at: int | None = None


class _Simulation:
    """One run: the random stream, id counters, the customer pool and the arrival-ordered heap."""

    def __init__(self, seed: int, start_ms: int, late_fraction: float, impossible_fraction: float,
                 sessions_per_day: float, until_ms: int | None, scenario: str = "default"):
        self.rng = random.Random(seed)
        self.conversion = SCENARIO_CONVERSION[scenario]
        self.focus_until = start_ms + FOCUS_DAYS * DAY_MS if self.conversion.focus_share else None
        self.now = start_ms
        self.start_ms, self.until_ms = start_ms, until_ms
        self.late_fraction, self.impossible_fraction = late_fraction, impossible_fraction
        self.sessions_per_day = sessions_per_day
        self.products = catalogue()
        self.popular = Weighted((p, p.popularity) for p in self.products)
        self.popular_unfocused = Weighted((p, p.popularity) for p in self.products if p.product_id != FOCUS_PRODUCT)
        self.in_category = {cat: Weighted((p, p.popularity) for p in self.products if p.category == cat)
                            for cat in CATEGORIES}
        self.n_customers = 0
        self.returns: list[tuple[int, int, Customer]] = []  # (due at, seq, customer): visits to come
        self.heap: list[tuple[int, int, Event]] = []
        self.seq = itertools.count()
        self.n_sessions = self.n_orders = self.n_tickets = 0

    # -- plumbing --

    def run(self, sessions: int) -> Iterator[Event]:
        starts = _session_starts(self.rng, self.start_ms, self.sessions_per_day)
        heap = self.heap
        for _ in range(sessions):
            t = next(starts)
            while heap and heap[0][0] <= t:  # nothing generated later can arrive before t
                yield heapq.heappop(heap)[2]
            self.session(t)
        while heap:
            yield heapq.heappop(heap)[2]

    def emit(self, type_: str, at: int, source: str, payload: dict, *, session_id=None, customer_id=None,
             order_id=None) -> None:
        rng = self.rng
        event = Event(str(uuid.UUID(int=rng.getrandbits(128), version=4)), type_, at, source,
                      session_id, customer_id, order_id, payload)
        arrival = at
        if self.late_fraction and rng.random() < self.late_fraction:
            arrival += 5 * SECOND_MS + int(rng.random() * (MAX_LATE_MS - 5 * SECOND_MS))
        if self.until_ms is not None and at > self.until_ms:
            return  # after drawing, so that a cut-off stream is a subset of the full one
        heapq.heappush(self.heap, (arrival, next(self.seq), event))

    def between(self, low_ms: float, high_ms: float) -> int:
        return int(low_ms + self.rng.random() * (high_ms - low_ms))

    def think_time(self) -> int:
        """Time between two page views: seconds to minutes (log-normal, median ~25 s)."""
        return int(min(8 * MINUTE_MS, max(2 * SECOND_MS, self.rng.lognormvariate(10.1, 0.9))))

    # -- visits --

    def session(self, t: int) -> None:
        rng = self.rng
        self.now = t
        self.n_sessions += 1
        session_id = f"s-{self.n_sessions:06d}"
        customer = known = None
        if self.returns and self.returns[0][0] <= t:
            known = heapq.heappop(self.returns)[2]
            if rng.random() < P_RECOGNISED_ON_RETURN:
                customer = known
        if known is not None and rng.random() < 0.7:
            ua, device = known.ua, known.device
        else:
            ua, device = USER_AGENTS.draw(rng)
        source = "app" if device == "mobile" and rng.random() < P_APP_GIVEN_MOBILE else "web"
        channel = CHANNEL_PICK.draw(rng)
        if known is not None:
            uf, city = known.uf, known.city
            ddd = next(d for c, d in UFS[uf][2] if c == city)
        else:
            uf = UF_PICK.draw(rng)
            city, ddd = rng.choice(UFS[uf][2])
        visit = _Visit(session_id, ua, source, device, channel, customer, known, uf, city, ddd)
        pages = self.walk(visit)
        _, _, sources, campaigns = CHANNELS[channel]
        self.emit("session_started", t, source, {
            "user_agent": ua, "channel": channel,
            "utm_source": rng.choice(sources) if sources else None,
            "utm_campaign": rng.choice(campaigns) if campaigns else None,
            "landing_page": pages[0][1],
        }, session_id=session_id, customer_id=customer and customer.customer_id)
        t += self.between(100, 900)
        adds = self.cart_adds(visit, pages)
        cart: list[list] = []  # [product, quantity]
        for i, (page_type, path, product) in enumerate(pages):
            if i:
                t += self.think_time()
            self.page(visit, t, page_type, path, product)
            if i in adds and all(entry[0] is not product for entry in cart):
                t += self.between(3 * SECOND_MS, 20 * SECOND_MS)
                quantity = 2 if product.price < 100 and rng.random() < 0.12 else 1
                cart.append([product, quantity])
                self.visit_emit(visit, "cart_item_added", t, {
                    "product_id": product.product_id, "quantity": quantity, "unit_price": product.price})
        if cart:
            self.checkout(visit, t, cart)
        if customer is not None and rng.random() < 0.04:
            self.customer_updated(visit, t + self.between(MINUTE_MS, 5 * MINUTE_MS))

    def visit_emit(self, visit: _Visit, type_: str, at: int, payload: dict) -> None:
        self.emit(type_, at, visit.source, payload, session_id=visit.session_id,
                  customer_id=visit.customer.customer_id if visit.customer else None)

    def page(self, visit: _Visit, at: int, page_type: str, path: str, product: Product | None = None) -> None:
        self.visit_emit(visit, "page_viewed", at, {
            "page_type": page_type, "path": path, "product_id": product.product_id if product else None})

    def walk(self, visit: _Visit) -> list[tuple[str, str, Product | None]]:
        """The browsing part of a visit: (page type, path, product) from landing to exit or cart."""
        rng = self.rng
        count = min(13, max(3, int(rng.lognormvariate(1.9, 0.5))))
        views_product = rng.random() < self.conversion.view_product
        has_orders = visit.customer is not None and visit.customer.orders > 0
        kinds = []
        for i in range(count):
            r = rng.random()
            if i == 0 and views_product and visit.channel in ("paid_search", "social", "marketplace", "whatsapp"):
                kinds.append("product" if r < 0.7 else "search")
            elif i == 0:
                kinds.append("home" if r < 0.5 else "category" if r < 0.8 else "search")
            elif views_product and r < 0.45:
                kinds.append("product")
            else:
                r = rng.random()
                kinds.append("home" if r < 0.2 else "category" if r < 0.55 else "search" if r < 0.85
                             else "order_status" if has_orders and r < 0.93 else "faq" if r < 0.96 else "contact")
        if views_product and "product" not in kinds:
            kinds[-1] = "product"
        pages, last = [], None
        for kind in kinds:
            if kind == "product":
                last = self.product_view(last)
                pages.append(("product", last.path, last))
            elif kind == "category":
                category = last.category if last is not None else rng.choice(tuple(CATEGORIES))
                pages.append(("category", f"/c/{category}", None))
            elif kind == "search":
                noun = (last or self.popular.draw(rng)).name.split()[0]
                pages.append(("search", f"/busca?q={slug(noun)}", None))
            else:
                pages.append((kind, {"home": "/", "faq": "/ajuda/perguntas-frequentes", "contact": "/atendimento",
                                     "order_status": "/minha-conta/pedidos"}[kind], None))
        return pages

    def product_view(self, last: Product | None) -> Product:
        """The next product page: often one of the same category, else by popularity. In the post-sale
        scenario FOCUS_PRODUCT takes its share of views while on sale and none after."""
        rng = self.rng
        if self.focus_until is not None and self.now < self.focus_until and rng.random() < self.conversion.focus_share:
            return next(p for p in self.products if p.product_id == FOCUS_PRODUCT)
        if last is not None and rng.random() < 0.5:
            product = self.in_category[last.category].draw(rng)
        else:
            product = self.popular.draw(rng)
        if self.focus_until is not None and self.now >= self.focus_until and product.product_id == FOCUS_PRODUCT:
            product = self.popular_unfocused.draw(rng)  # the batch was withdrawn
        return product

    def cart_adds(self, visit: _Visit, pages: list) -> set[int]:
        """Indexes of the product pages where the visitor adds to the cart (empty: no cart)."""
        rng = self.rng
        product_pages = [i for i, page in enumerate(pages) if page[2] is not None]
        p = self.conversion.cart_given_product * CHANNELS[visit.channel][1] * DEVICE_CONVERSION[visit.device]
        if visit.customer is not None:
            p *= 1.5
        if not product_pages or rng.random() >= min(0.8, p):
            return set()
        first = rng.choice(product_pages)
        return {first} | {i for i in product_pages if i > first and rng.random() < 0.25}

    # -- cart and checkout --

    def checkout(self, visit: _Visit, t: int, cart: list) -> None:
        rng = self.rng
        t += self.think_time()
        self.page(visit, t, "cart", "/carrinho")
        if len(cart) > 1 and rng.random() < 0.15:
            product, quantity = cart.pop()
            t += self.between(3 * SECOND_MS, 30 * SECOND_MS)
            self.visit_emit(visit, "cart_item_removed", t, {"product_id": product.product_id, "quantity": quantity})
        elif cart[0][0].price < 150 and rng.random() < 0.08:
            cart[0][1] += 1
            t += self.between(3 * SECOND_MS, 30 * SECOND_MS)
            self.visit_emit(visit, "cart_quantity_changed", t, {"product_id": cart[0][0].product_id,
                                                               "quantity": cart[0][1]})
        if rng.random() >= self.conversion.shipping_given_cart:
            return
        subtotal = round(sum(p.price * q for p, q in cart), 2)
        t += self.think_time()
        self.page(visit, t, "shipping", "/checkout/entrega")
        carrier, freight, promised_days = self.shipping_choice(visit.uf, subtotal)
        t += self.between(10 * SECOND_MS, 90 * SECOND_MS)
        self.visit_emit(visit, "shipping_option_chosen", t, {
            "carrier": carrier, "price": freight, "promised_days": promised_days})
        penalty = 1.5 * freight / subtotal
        if rng.random() >= max(0.15, self.conversion.payment_given_shipping - penalty):
            return
        t += self.think_time()
        self.page(visit, t, "payment", "/checkout/pagamento")
        method = PAYMENT_METHODS.draw(rng)
        installments = self.installments(subtotal + freight) if method == "credit_card" else 1
        t += self.between(10 * SECOND_MS, 90 * SECOND_MS)
        self.visit_emit(visit, "payment_method_chosen", t, {"method": method, "installments": installments})
        if rng.random() >= self.conversion.registration_given_payment:
            return
        t += self.think_time()
        self.page(visit, t, "registration", "/checkout/identificacao")
        t = self.identify(visit, t)
        if rng.random() >= self.conversion.order_given_registration:
            return
        t += self.between(15 * SECOND_MS, 2 * MINUTE_MS)
        order_id = self.order(visit, t, cart, subtotal, freight, carrier, promised_days, method, installments)
        self.page(visit, t + self.between(SECOND_MS, 4 * SECOND_MS), "confirmation",
                  f"/checkout/confirmacao/{order_id}")

    def shipping_choice(self, uf: str, subtotal: float) -> tuple[str, float, int]:
        zone = UFS[uf][1]
        weight = min(25.0, subtotal * 0.015)
        options = [  # (carrier, price, promised days)
            ("correios_sedex", 19.9 + 9 * zone + weight, 1 + zone + (zone >= 2)),
            ("correios_pac", 0.0 if subtotal >= 199 else 12.9 + 6 * zone + weight, 5 + 2 * zone),
            ("jadlog", 15.9 + 7 * zone + weight, 3 + 2 * zone),
        ]
        if zone <= 1:
            options.append(("loggi", 11.9 + 6 * zone + weight, 1 + 2 * zone))
        r = self.rng.random()
        if r < 0.55:
            chosen = min(options, key=lambda o: (o[1], o[2]))
        elif r < 0.8:
            chosen = min(options, key=lambda o: (o[2], o[1]))
        else:
            chosen = self.rng.choice(options)
        return chosen[0], round(chosen[1], 2), chosen[2]

    def installments(self, total: float) -> int:
        if total < 100:
            return 1
        return max(1, min(INSTALLMENTS.draw(self.rng), int(total // MIN_INSTALLMENT_BRL)))

    def identify(self, visit: _Visit, t: int) -> int:
        """registration_completed: login for known customers, else a new account (customer_registered)."""
        rng = self.rng
        if visit.customer is None:
            visit.customer = visit.known
        if visit.customer is not None:
            t += self.between(10 * SECOND_MS, 45 * SECOND_MS)
            self.visit_emit(visit, "registration_completed", t, {"kind": "login"})
            return t
        t += self.between(40 * SECOND_MS, 4 * MINUTE_MS)
        self.n_customers += 1
        customer_id = f"c-{self.n_customers:05d}"
        sex = "f" if rng.random() < 0.52 else "m" if rng.random() < 0.96 else None
        first = rng.choice(FIRST_NAMES[sex or rng.choice("fm")])
        last = [rng.choice(SURNAMES) for _ in range(1 + (rng.random() < 0.6))]
        name = " ".join([first, *last])
        number = rng.randrange(100) if rng.random() < 0.6 else ""
        email = f"{slug(first)}.{slug(last[-1])}{number}@{EMAIL_DOMAINS.draw(rng)}"
        consents = [c for c, p in (("email", 0.6), ("whatsapp", 0.45), ("sms", 0.15)) if rng.random() < p]
        age_days = int(max(18, min(80, rng.gauss(36, 11))) * 365.25) + rng.randrange(365)
        birth = dt.datetime.fromtimestamp(t / 1000, dt.UTC).date() - dt.timedelta(days=age_days)
        customer = Customer(customer_id, visit.uf, visit.city, visit.user_agent, visit.device, tuple(consents))
        visit.customer = customer
        self.visit_emit(visit, "registration_completed", t, {"kind": "new_account"})
        self.emit("customer_registered", t + self.between(50, 800), visit.source, {
            "name": name, "email": email, "cpf": cpf(rng),
            "phone": phone(rng, visit.ddd) if rng.random() < 0.9 else None,
            "birth_date": birth.isoformat() if rng.random() < 0.85 else None,
            "sex": sex, "uf": visit.uf, "city": visit.city, "consents": consents,
        }, session_id=visit.session_id, customer_id=customer_id)
        for _ in range(RETURN_VISITS.draw(rng)):
            self.schedule_return(customer, t)
        return t

    def schedule_return(self, customer: Customer, t: int, within_ms: int | None = None) -> None:
        """A later visit by the customer: within `within_ms`, else hours (a third) to weeks later."""
        rng = self.rng
        if within_ms is not None:
            delay = self.between(HOUR_MS, within_ms)
        elif rng.random() < 0.35:
            delay = self.between(HOUR_MS, DAY_MS)
        else:
            delay = DAY_MS + int(rng.expovariate(1 / (7 * DAY_MS)))
        heapq.heappush(self.returns, (t + delay, next(self.seq), customer))

    def customer_updated(self, visit: _Visit, t: int) -> None:
        customer = visit.customer
        if self.rng.random() < 0.5:
            payload = {"email": None, "phone": phone(self.rng, visit.ddd),
                       "uf": None, "city": None}
        else:
            uf = UF_PICK.draw(self.rng)
            city, _ = self.rng.choice(UFS[uf][2])
            customer.uf, customer.city = uf, city
            payload = {"email": None, "phone": None, "uf": uf, "city": city}
        self.emit("customer_updated", t, visit.source, payload, session_id=visit.session_id,
                  customer_id=customer.customer_id)

    # -- orders --

    def order(self, visit: _Visit, t: int, cart: list, subtotal: float, freight: float, carrier: str,
              promised_days: int, method: str, installments: int) -> str:
        self.n_orders += 1
        n = self.n_orders
        order_id = f"o-{n:06d}"
        customer = visit.customer
        customer.orders += 1
        order = _Order(order_id, n, visit.session_id, customer, visit.source, [(p, q) for p, q in cart],
                       round(subtotal + freight, 2), freight, method, installments, carrier,
                       self.promise(t, promised_days + HANDLING_DAYS[method]), promised_days, UFS[customer.uf][1])
        if self.rng.random() < P_ORDER_STATUS_VISIT:
            self.schedule_return(customer, t, within_ms=5 * DAY_MS)
        facts = self.lifecycle(order, t)
        clean = list(facts)
        if self.impossible_fraction and self.rng.random() < self.impossible_fraction:
            facts = self.make_impossible(order, facts)
        for at, type_, source, payload in facts:
            self.emit(type_, at, source, payload, session_id=order.session_id, customer_id=customer.customer_id,
                      order_id=order_id)
        self.messages(order, clean)
        return order_id

    @staticmethod
    def promise(t: int, days: int) -> int:
        """Promised delivery: the end of the Brasília day `days` days after `t`."""
        return _brt_midnight(t + days * DAY_MS) + DAY_MS - SECOND_MS

    def lifecycle(self, order: _Order, t: int) -> list[tuple[int, str, str, dict]]:
        """The order's facts (time, type, source, payload) from placement to delivery or cancellation."""
        rng, between = self.rng, self.between
        facts = [(t, "order_placed", order.source, {
            "items": [{"product_id": p.product_id, "quantity": q, "unit_price": p.price} for p, q in order.items],
            "total": order.total, "freight": order.freight, "payment_method": order.method,
            "installments": order.installments, "uf": order.customer.uf, "city": order.customer.city,
            "carrier": order.carrier, "promised_delivery_at": order.promised_at,
        })]

        def cancel(at: int, reason: str, source: str = "erp") -> list:
            facts.append((at, "order_cancelled", source, {"reason": reason}))
            return facts

        charge_id = f"ch-{order.n:06d}-1"
        if order.method == "credit_card":
            t += between(20 * SECOND_MS, 3 * MINUTE_MS)
            if rng.random() < P_CARD_FAILED:
                reason = rng.choice(("insufficient_funds", "card_declined", "invalid_card_data", "antifraud_refused"))
                facts.append((t, "payment_failed", "psp", {"method": "credit_card", "reason": reason}))
                if rng.random() >= P_CARD_RETRY_OK:
                    return cancel(t + between(30 * MINUTE_MS, 3 * HOUR_MS), "payment_not_made")
                t += between(2 * MINUTE_MS, 20 * MINUTE_MS)
            facts.append((t, "order_paid", "psp", {"charge_id": None, "method": "credit_card", "amount": order.total}))
        elif order.method == "pix":
            due = t + PIX_EXPIRY_MS.draw(rng)
            t += between(SECOND_MS, 5 * SECOND_MS)
            facts.append((t, "payment_pending", "psp", {"charge_id": charge_id, "method": "pix",
                                                        "amount": order.total, "due_at": due}))
            if rng.random() >= P_PIX_PAID:
                facts.append((due + between(0, MINUTE_MS), "payment_expired", "psp",
                              {"charge_id": charge_id, "method": "pix"}))
                return cancel(due + between(2 * MINUTE_MS, 20 * MINUTE_MS), "payment_not_made")
            t = min(due - SECOND_MS, t + int(min(25 * MINUTE_MS, rng.lognormvariate(11.7, 0.8))))
            facts.append((t, "order_paid", "psp", {"charge_id": charge_id, "method": "pix", "amount": order.total}))
        else:  # boleto: due at the end of a Brasília day 1-3 days ahead; the bank confirms 1-3 days after payment
            due = _brt_midnight(t + rng.randint(1, 3) * DAY_MS) + DAY_MS - SECOND_MS
            t += between(2 * SECOND_MS, 10 * SECOND_MS)
            facts.append((t, "payment_pending", "psp", {"charge_id": charge_id, "method": "boleto",
                                                        "amount": order.total, "due_at": due}))
            if rng.random() >= P_BOLETO_PAID:
                expired = due + BOLETO_CLEARING_MS + between(0, 2 * HOUR_MS)
                facts.append((expired, "payment_expired", "psp", {"charge_id": charge_id, "method": "boleto"}))
                return cancel(expired + between(10 * MINUTE_MS, 2 * HOUR_MS), "payment_not_made")
            t = self.working_hours(between(t + 10 * MINUTE_MS, due) + between(DAY_MS, BOLETO_CLEARING_MS))
            facts.append((t, "order_paid", "psp", {"charge_id": charge_id, "method": "boleto", "amount": order.total}))

        r = rng.random()
        for reason, p in P_CANCEL_AFTER_PAID.items():
            if r < p:
                t += between(HOUR_MS, DAY_MS)
                cancel(t, reason, "web" if reason == "customer_request" else "erp")
                facts.append((t + between(HOUR_MS, 3 * DAY_MS), "order_refunded", "psp", {"amount": order.total}))
                return facts
            r -= p
        t = self.working_hours(t + between(HOUR_MS, 20 * HOUR_MS))
        facts.append((t, "order_invoiced", "erp", {"invoice_number": f"{100000 + order.n}"}))
        t = self.working_hours(t + between(2 * HOUR_MS, DAY_MS))
        facts.append((t, "order_shipped", "erp", {"carrier": order.carrier, "tracking_code": self.tracking(order)}))
        late_rate = CARRIER_LATE_RATE[order.carrier] + 0.04 * max(0, order.zone - 1)
        if rng.random() < late_rate:
            day = _brt_midnight(order.promised_at) + rng.randint(1, 6) * DAY_MS
        else:
            transit = between(12 * HOUR_MS, max(DAY_MS, order.promised_days * DAY_MS))
            day = _brt_midnight(min(t + transit, max(order.promised_at, t + 12 * HOUR_MS)))
        delivered = max(t + 4 * HOUR_MS, day + between(8 * HOUR_MS, 20 * HOUR_MS))  # 8h-20h local time
        order.late = delivered > order.promised_at
        receiver = rng.choice(("destinatario", "porteiro", "familiar", "vizinho", None))
        facts.append((delivered, "order_delivered", "carrier", {"receiver": receiver}))
        order.delivered_at = delivered
        self.maybe_return(order, facts, delivered)
        return facts

    def working_hours(self, t: int) -> int:
        """`t`, or the start of the next warehouse shift (Monday to Saturday, 8h-18h Brasília time)."""
        local = t + BRT_OFFSET_MS
        day, hour = local // DAY_MS, local % DAY_MS // HOUR_MS
        weekday = (day + 3) % 7  # 1970-01-01 was a Thursday; Monday is 0
        if 8 <= hour < 18 and weekday != 6:
            return t
        day += (hour >= 18) + ((day + (hour >= 18) + 3) % 7 == 6)
        return day * DAY_MS - BRT_OFFSET_MS + 8 * HOUR_MS + self.between(0, 90 * MINUTE_MS)

    def tracking(self, order: _Order) -> str:
        rng = self.rng
        if order.carrier.startswith("correios"):
            prefix = "QB" if order.carrier == "correios_pac" else "OJ"
            return f"{prefix}{rng.randrange(10**8, 10**9)}BR"
        if order.carrier == "jadlog":
            return f"{rng.randrange(10**13, 10**14)}"
        return f"LGI{rng.randrange(10**9, 10**10)}"

    def maybe_return(self, order: _Order, facts: list, delivered: int) -> None:
        rng = self.rng
        returned = [(p, q) for p, q in order.items if rng.random() < p.return_rate + 0.03 * order.late]
        if not returned:
            return
        reason = max(returned, key=lambda line: line[0].return_rate)[0].return_reasons.draw(rng)
        items = [{"product_id": p.product_id, "quantity": q} for p, q in returned]
        t = delivered + self.between(6 * HOUR_MS, 7 * DAY_MS)  # CDC art. 49: 7 days to withdraw
        facts.append((t, "return_requested", "web", {"items": items, "reason": reason}))
        order.return_requested_at = t
        t = self.working_hours(t + self.between(3 * DAY_MS, 12 * DAY_MS))
        facts.append((t, "order_returned", "erp", {"items": items, "reason": reason}))
        amount = sum(p.price * q for p, q in returned)
        if len(returned) == len(order.items) and reason != "regret":
            amount += order.freight
        facts.append((t + self.between(DAY_MS, 5 * DAY_MS), "order_refunded", "psp", {"amount": round(amount, 2)}))

    def make_impossible(self, order: _Order, facts: list) -> list:
        """One impossible transition, kept in the log for the consumers to flag (IMPOSSIBLE_KINDS)."""
        rng = self.rng
        times = {type_: at for at, type_, _, _ in facts}
        kinds = []
        if "order_delivered" in times:
            kinds.append("delivered_before_shipped")
        if "order_paid" in times:
            kinds.append("paid_twice")
        if "order_cancelled" in times:
            kinds.append("event_after_cancelled")
        kind = rng.choice(kinds)
        facts = list(facts)
        if kind == "delivered_before_shipped":
            at = times["order_shipped"] - self.between(HOUR_MS, 20 * HOUR_MS)
            facts = [(at, *f[1:]) if f[1] == "order_delivered" else f for f in facts]
        elif kind == "paid_twice":
            paid = next(f for f in facts if f[1] == "order_paid")
            facts.append((paid[0] + self.between(MINUTE_MS, 30 * MINUTE_MS), *paid[1:]))
        else:
            at = times["order_cancelled"] + self.between(HOUR_MS, 2 * DAY_MS)
            if order.method == "credit_card":
                facts.append((at, "order_shipped", "erp", {"carrier": order.carrier,
                                                           "tracking_code": self.tracking(order)}))
            else:
                facts.append((at, "order_paid", "psp", {"charge_id": f"ch-{order.n:06d}-1", "method": order.method,
                                                        "amount": order.total}))
        return sorted(facts, key=lambda f: f[0])

    # -- messages and feedback --

    def messages(self, order: _Order, facts: list) -> None:
        """Standard messages at each phase, support tickets, and the NPS survey answer."""
        rng, between = self.rng, self.between
        customer = order.customer
        keys = {"customer_id": customer.customer_id, "order_id": order.order_id}
        whatsapp = "whatsapp" in customer.consents
        for at, type_, _, _ in facts:
            if type_ in PHASE_MESSAGES and rng.random() < 0.98:
                template, phase = PHASE_MESSAGES[type_]
                channel = "whatsapp" if whatsapp and rng.random() < 0.6 else "email"
                self.emit("message_sent", at + between(5 * SECOND_MS, 3 * MINUTE_MS), "crm", {
                    "channel": channel, "template": template, "phase": phase, "action_id": None}, **keys)
        types = {f[1] for f in facts}
        if order.return_requested_at is not None:
            self.ticket(order, "return", order.return_requested_at - between(HOUR_MS, DAY_MS), 0.5, keys)
        if order.late:
            self.ticket(order, "delivery", order.promised_at + between(12 * HOUR_MS, 2 * DAY_MS), 0.35, keys)
        if "payment_expired" in types or "payment_failed" in types:
            self.ticket(order, "payment", facts[0][0] + between(30 * MINUTE_MS, DAY_MS), 0.12, keys)
        category = rng.choice(("delivery", "product", "payment", "other"))
        self.ticket(order, category, facts[0][0] + between(HOUR_MS, 5 * DAY_MS), 0.05, keys)
        if order.delivered_at is not None and rng.random() < P_NPS_ANSWER:
            mood = "returned" if order.return_requested_at is not None else "late" if order.late else "happy"
            score = NPS_WEIGHTS[mood].draw(rng)
            kind = "promoter" if score >= 9 else "passive" if score >= 7 else "detractor"
            comment = rng.choice(NPS_COMMENTS[kind]) if rng.random() < 0.35 else None
            self.emit("nps_answered", order.delivered_at + between(DAY_MS, 7 * DAY_MS), "crm",
                      {"score": score, "comment": comment}, **keys)

    def ticket(self, order: _Order, category: str, at: int, probability: float, keys: dict) -> None:
        rng, between = self.rng, self.between
        if rng.random() >= probability:
            return
        self.n_tickets += 1
        number = f"t-{self.n_tickets:06d}"
        channel = TICKET_CHANNELS.draw(rng)
        self.emit("message_received", at, "crm", {"channel": channel, "ticket_number": number,
                                                  "subject": category}, **keys)
        at += between(SECOND_MS, 10 * SECOND_MS)
        self.emit("ticket_opened", at, "crm", {"ticket_number": number, "channel": channel, "category": category,
                                               "confirmation_sent": rng.random() < 0.96}, **keys)
        answered = at + between(*FIRST_RESPONSE_MS[channel])
        if answered - at > 2 * HOUR_MS and rng.random() < 0.3:  # the customer had to repeat themselves
            self.emit("message_received", between(at + HOUR_MS, answered), "crm",
                      {"channel": channel, "ticket_number": number, "subject": category}, **keys)
        self.emit("ticket_answered", answered, "crm", {"ticket_number": number, "channel": channel}, **keys)
        if rng.random() < 0.85:
            self.emit("ticket_resolved", answered + between(10 * MINUTE_MS, 3 * DAY_MS), "crm",
                      {"ticket_number": number}, **keys)


# --- public API -----------------------------------------------------------------------------------


def generate(seed: int, sessions: int, start_ms: int, *, scenario: str = "default", late_fraction: float = 0.02,
             impossible_fraction: float = 0.005, sessions_per_day: float = DEFAULT_SESSIONS_PER_DAY,
             until_ms: int | None = None) -> Iterator[Event]:
    """Events of `sessions` visits starting at `start_ms`, and of their orders, in arrival order.

    Same arguments, same events. Sessions arrive at `sessions_per_day` on average, following the
    hour-of-day curve; order lifecycles run weeks past the last session unless `until_ms` cuts off
    every event that occurs after it (e.g. now, for a live demo).
    """
    if scenario not in SCENARIOS:
        raise ValueError(f"scenario {scenario!r}: unknown (known: {', '.join(SCENARIOS)})")
    for name, value in (("late_fraction", late_fraction), ("impossible_fraction", impossible_fraction)):
        if not 0 <= value <= 1:
            raise ValueError(f"{name}={value}: must be between 0 and 1")
    if sessions < 0 or sessions_per_day <= 0:
        raise ValueError(f"sessions={sessions}, sessions_per_day={sessions_per_day}: must be positive")
    simulation = _Simulation(seed, start_ms, late_fraction, impossible_fraction, sessions_per_day, until_ms, scenario)
    return simulation.run(sessions)


def write_jsonl(events: Iterable[Event], path) -> int:
    """Writes events in the JSON ingest form, one per line (UTF-8); returns how many were written."""
    count = 0
    with Path(path).open("w", encoding="utf-8") as out:
        for event in events:
            out.write(json.dumps(to_json(event), ensure_ascii=False, separators=(", ", ": ")))
            out.write("\n")
            count += 1
    return count
