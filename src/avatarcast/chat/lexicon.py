"""The vocabulary viewers use to ask about products, grouped by what they ask about.

A concept groups the words for one thing a product sheet states ("capacity": "litre", "fit",
"inhoud", "容量" ...). Words are space-separated; English words count for Dutch too (viewers
borrow "watt", "usb" and "hdmi"). Extend it as the catalog grows: a question whose words are all
missing here still works through the catalog's own words, it just matches less often.
"""

from __future__ import annotations

__all__ = ["CATEGORY_ALIASES", "CONCEPTS", "PHRASES", "STOPWORDS", "ZH_NEUTRAL"]

CONCEPTS: dict[str, dict[str, str]] = {
    "capacity": {
        "en": "capacity volume litre litres liter liters fit fits hold holds big large roomy",
        "nl": "inhoud liter liters past passen groot grote ruim",
        "zh": "容量 几升 升 装多少 能装 装得下 放得下 多大",
    },
    "size": {
        "en": "size screen diagonal inch inches big large wide dimensions",
        "nl": "formaat grootte diagonaal schermdiagonaal scherm inch groot grote breed",
        "zh": "尺寸 多大 英寸 寸 屏幕 画面",
    },
    "power": {
        "en": "power watt watts wattage powerful consumption energy electricity",
        "nl": "vermogen watt stroom verbruik energie krachtig",
        "zh": "功率 瓦 瓦数 耗电",
    },
    "temperature": {
        "en": "temperature temperatures degrees degree hot heat celsius",
        "nl": "temperatuur temperaturen graden graad heet warm",
        "zh": "温度 几度 度",
    },
    "presets": {
        "en": "preset presets programme programmes program programs mode modes setting settings",
        "nl": "stand standen programma programma's voorgeprogrammeerd voorgeprogrammeerde modus",
        "zh": "预设 模式 程序 档位",
    },
    "timer": {
        "en": "timer minutes minute",
        "nl": "timer minuten minuut",
        "zh": "定时 计时 分钟",
    },
    "dishwasher": {
        "en": "dishwasher dishwashers",
        "nl": "vaatwasser vaatwasserbestendig afwasmachine",
        "zh": "洗碗机",
    },
    "clean": {
        "en": "clean cleaning wash washing",
        "nl": "schoonmaken afwassen wassen",
        "zh": "清洗 清洁 洗",
    },
    "preheat": {
        "en": "preheat preheating pre-heat",
        "nl": "voorverwarmen opwarmen",
        "zh": "预热",
    },
    "price": {
        "en": "price prices cost costs expensive cheap euro euros pay discount sale deal",
        "nl": "prijs prijzen kost kosten duur goedkoop euro betalen korting aanbieding",
        "zh": "价格 多少钱 价钱 钱 贵 便宜 售价 优惠 打折",
    },
    "stock": {
        "en": "stock available availability",
        "nl": "voorraad leverbaar beschikbaar uitverkocht",
        "zh": "有货 库存 现货 还有货",
    },
    "brand": {
        "en": "brand maker manufacturer manufactured company",
        "nl": "merk fabrikant",
        "zh": "品牌 牌子 厂家",
    },
    "weight": {
        "en": "weight weigh weighs heavy",
        "nl": "gewicht weegt wegen zwaar",
        "zh": "重量 多重 公斤 斤 重",
    },
    "battery": {
        "en": "battery batteries charge last lasts runtime run runs cordless",
        "nl": "accu accuduur batterij opladen gebruiksduur meegaan",
        "zh": "电池 续航 充一次电",
    },
    "speed": {
        "en": "speed fast quick rpm",
        "nl": "snelheid topsnelheid snel toeren",
        "zh": "转速 速度 多快",
    },
    "material": {
        "en": "material materials made plastic glass",
        "nl": "materiaal gemaakt kunststof glas",
        "zh": "材质 材料",
    },
    "brightness": {
        "en": "brightness bright lumens lumen ansi",
        "nl": "helderheid helder lumen",
        "zh": "亮度 流明 亮",
    },
    "resolution": {
        "en": "resolution pixels pixel sharp hd 1080p full-hd 4k",
        "nl": "resolutie pixels scherp",
        "zh": "分辨率 清晰度 像素 高清",
    },
    "refresh": {
        "en": "refresh hz hertz gaming fps",
        "nl": "verversingssnelheid",
        "zh": "刷新率 赫兹 高刷",
    },
    "panel": {
        "en": "panel curved va ips",
        "nl": "paneel gebogen",
        "zh": "面板 曲面",
    },
    "charging": {
        "en": "charging charge usb-c usbc usb laptop",
        "nl": "opladen laden oplaadtijd",
        "zh": "充电 笔记本",
    },
    "wall": {
        "en": "wall mount mounting vesa hang",
        "nl": "muur hangen ophangen bevestiging",
        "zh": "挂墙 壁挂 墙 挂",
    },
    "speakers": {
        "en": "speaker speakers sound audio headphone headphones",
        "nl": "speaker speakers luidspreker geluid koptelefoon koptelefoonaansluiting",
        "zh": "扬声器 音箱 喇叭 声音 音响 耳机",
    },
    "phone": {
        "en": "phone phones iphone smartphone android mirroring mirror",
        "nl": "telefoon mobiel schermdelen",
        "zh": "手机 投屏",
    },
    "daylight": {
        "en": "daylight daytime sunlight",
        "nl": "daglicht overdag zonlicht",
        "zh": "白天 日光 阳光",
    },
    "focus": {
        "en": "focus autofocus focusing",
        "nl": "scherpstelling scherpstellen focus",
        "zh": "自动对焦 对焦",
    },
    "basket": {
        "en": "basket baskets tray",
        "nl": "mand bakplaat",
        "zh": "炸篮 篮子",
    },
    "oil": {
        "en": "oil oily fat",
        "nl": "olie vet",
        "zh": "少油 无油 油",
    },
    "family": {
        "en": "family people persons household",
        "nl": "gezin personen familie",
        "zh": "一家人 家庭 几个人",
    },
    "display": {
        "en": "display touch touchscreen",
        "nl": "aanraakscherm display",
        "zh": "触摸屏 触屏 显示屏",
    },
    "stand": {
        "en": "stand height adjustable",
        "nl": "voet hoogte verstelbaar",
        "zh": "支架 高度 升降",
    },
    "portable": {
        "en": "backpack portable carry travel",
        "nl": "rugzak meenemen",
        "zh": "背包 便携 携带",
    },
    "connect": {
        "en": "connect connection hdmi wifi wi-fi",
        "nl": "aansluiten verbinden wifi",
        "zh": "连接 无线",
    },
}

#: Multi-word phrasings rewritten to a concept word before tokenising (text is casefolded).
PHRASES: tuple[tuple[str, str], ...] = (
    (
        r"\bhow much\b(?!\s+(?:does|can|will|would)\s+(?:it|this|that|the\s+\w+)\s+"
        r"(?:hold|fit|weigh))",
        " price ",
    ),
    (r"\bsold out\b|\bin stock\b|\bop voorraad\b", " stock "),
    (r"\bwie maakt\b|\bwho makes\b", " brand "),
    (r"\bwat kost\b|\bhoeveel kost\b", " prijs "),
    (r"\bgaat\b(?=.{0,40}\bmee\b)", " meegaan "),
)

#: Category words that name a product by what it is: mapped to the word its title uses.
CATEGORY_ALIASES: dict[str, str] = {
    "air fryer": "airfryer",
    "airfrier": "airfryer",
    "heteluchtfriteuse": "airfryer",
    "空气炸锅": " airfryer ",
    "炸锅": " airfryer ",
    "beamer": "projector",
    "投影仪": " projector ",
    "投影机": " projector ",
    "显示器": " monitor ",
    "beeldscherm": "monitor",
}

STOPWORDS: dict[str, str] = {
    "en": (
        "a an the this that these those it its it's is are was were be been am i you your we our "
        "us they them he she and or but so if then than of in on at to for from with by as into "
        "about up out over also too even just very really all any some more much many can could "
        "will would should may might must do does did done has have had there here what what's "
        "which who how why when where let me my get got one ones yes no not okay ok oh hey hi "
        "hello please thanks thank question quick ask wondering wonder know tell say said "
        "product item thing things come comes use used work works good great nice love like want "
        "need kind type sort long well still actually anyone someone lol wow guys host sanne "
        "daan mila dear think pls plz u ur r now today currently right"
    ),
    "nl": (
        "de het een en of maar dus als dan van in op aan met voor door naar bij uit over onder om "
        "te tot is zijn was waren wordt worden heeft hebben had kan kunnen kun kunt zal zullen wil "
        "willen moet moeten mag dit dat deze die er erin eruit ermee hier daar je jij jullie u uw "
        "we wij ons onze ik mijn mn hij zij ze hun ook nog al wel niet geen heel erg echt zo even "
        "eens toch nu wat wie hoe waarom welk welke waar wanneer hoeveel hoelang lang mee hoi "
        "hallo dag goedemiddag goedenavond vraag vraagje goede goeie weet iemand product ding "
        "apparaat zit zitten gaat gaan doen doet werkt werken graag alsjeblieft aub bedankt "
        "dank leuk mooi fijn eigenlijk precies ongeveer soort type sanne daan mila nu vandaag "
        "heb hebt veel nodig"
    ),
}

#: Chinese function words and politeness that ask about nothing, matched longest first.
ZH_NEUTRAL = (
    "请问 主播 你好 您好 大家 宝贝 这款 那款 这个 那个 产品 商品 东西 一下 可以 能不能 能否 "
    "会不会 是不是 有没有 是否 怎么样 怎么 什么 多少 知道 想问 谢谢 支持 里面 这 那 款 个 它 "
    "的 了 吗 呢 是 有 没 能 会 不 啊 吧 哦 呀 嘛 我 你 您 们 想 问 还 也 都 就 在 和 要 用 "
    "里 上 下 一 请 放 进 到 吃 给 得 么 多 好 大 很 太 功能 需要 需不需要 支不支持 支持"
)
