"""The bilingual word list behind :mod:`engine.prompt` (data only, plus index building).

Each table maps an English *canonical* phrase (what goes into the Stable
Diffusion prompt) to its surface forms. Chinese forms cover simplified,
traditional and common Cantonese spellings; English forms are lower-case
word sequences. :data:`ZH_INDEX` and :data:`EN_INDEX` are the lookup tables
the parser uses; they are built once at import and refuse conflicting
entries, so a form can never silently mean two things.

Conventions for the English side:

* subjects are bare singular nouns (``"old man"``); plurals come from
  :data:`_IRREGULAR_PLURALS` or ``+ "s"``;
* clothing and objects carry their article (``"a hat"``, ``"glasses"``,
  ``"coffee"``) so they read naturally after "wearing" / "holding";
* transitive actions (:data:`_TRANSITIVE_ACTIONS`) take the next object,
  e.g. "holding" + "an umbrella"; a trailing "at" is dropped when no object
  follows ("looking at" -> "looking").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType


class Kind(Enum):
    """What role a lexicon entry plays in a description."""

    SUBJECT = "subject"  #: who/what the picture is of (boy, cat, robot)
    ADJECTIVE = "adjective"  #: goes before the subject noun (cute, smiling)
    COLOR = "color"  #: modifies the next noun (blue -> blue hair)
    HAIR = "hair"  #: hair colour/length/style
    EYES = "eyes"
    CLOTHING = "clothing"  #: rendered as "wearing ..."
    FEATURE = "feature"  #: body features rendered as "with ..." (cat ears, wings)
    OBJECT = "object"  #: things held/used; object of a transitive action
    ACTION = "action"
    PLACE = "place"
    WEATHER = "weather"
    TIME = "time"  #: time of day / season / sky
    NUMBER = "number"  #: makes the next subject plural (two girls)
    NEGATION = "negation"  #: the next known content word goes to the negative prompt
    LOCATIVE = "locative"  #: in/at/在/喺: an unknown word after it is a place
    ARTICLE = "article"  #: a/an/the (English only; kept before unknown objects)
    STOP = "stop"  #: grammatical filler, ignored


#: Kinds that belong to the scene (rendered as separate comma tags).
SCENE_KINDS: frozenset[Kind] = frozenset({Kind.PLACE, Kind.WEATHER, Kind.TIME})


@dataclass(frozen=True)
class Entry:
    """One meaning: its English rendering and role.

    ``plural`` is set for subjects (and for an English surface form that *is*
    the plural, ``is_plural`` is true); ``transitive`` marks actions that take
    an object.
    """

    english: str
    kind: Kind
    plural: str = ""
    is_plural: bool = False
    transitive: bool = False


Table = Mapping[str, tuple[str, ...]]

# The tables below are kept one meaning per line on purpose (easy to scan and
# extend); the formatter would put every form on its own line.
# fmt: off

# --------------------------------------------------------------------------
# Subjects
# --------------------------------------------------------------------------

_SUBJECTS_ZH: Table = {
    "boy": ("男孩", "男孩子", "男生", "少年", "男仔", "男仔頭"),
    "girl": ("女孩", "女孩子", "女生", "少女", "女仔", "姑娘"),
    "little girl": ("小女孩", "小女孩子", "細路女", "细路女"),
    "little boy": ("小男孩",),
    "man": ("男人", "男子", "大叔", "叔叔", "男士"),
    "woman": ("女人", "女子", "姐姐", "阿姨", "女士"),
    "old man": ("老人", "老爷爷", "老爺爺", "爷爷", "爺爺", "老伯", "阿伯", "伯伯", "老公公"),
    "old woman": ("老奶奶", "奶奶", "婆婆", "阿婆", "老婆婆"),
    "child": ("孩子", "小孩", "小孩子", "儿童", "兒童", "小朋友", "细路", "細路", "细路仔", "細路仔", "小童"),
    "baby": ("婴儿", "嬰兒", "宝宝", "寶寶"),
    "student": ("学生", "學生"),
    "teacher": ("老师", "老師"),
    "cat": ("猫", "貓", "猫咪", "貓咪", "猫猫", "貓貓"),
    "kitten": ("小猫", "小貓", "小猫咪", "小貓咪"),
    "dog": ("狗", "狗狗", "狗仔"),
    "puppy": ("小狗", "小狗狗"),
    "rabbit": ("兔子", "兔", "兔仔", "小兔子"),
    "fox": ("狐狸",),
    "bird": ("鸟", "鳥", "小鸟", "小鳥", "雀仔"),
    "panda": ("熊猫", "熊貓"),
    "bear": ("熊", "小熊"),
    "robot": ("机器人", "機器人", "机械人", "機械人"),
    "dragon": ("龙", "龍", "飞龙", "飛龍"),
    "dinosaur": ("恐龙", "恐龍"),
    "handsome young man": ("靓仔", "靚仔"),
    "pretty young woman": ("靓女", "靚女"),
    "princess": ("公主",),
    "prince": ("王子",),
    "knight": ("骑士", "騎士"),
    "witch": ("女巫", "魔女"),
    "wizard": ("巫师", "巫師", "魔法师", "魔法師"),
    "magical girl": ("魔法少女",),
    "ninja": ("忍者",),
    "samurai": ("武士",),
    "elf": ("精灵", "精靈"),
    "angel": ("天使",),
    "mermaid": ("美人鱼", "美人魚"),
    "penguin": ("企鹅", "企鵝"),
    "goldfish": ("金鱼", "金魚"),
}

_SUBJECTS_EN: Table = {
    "boy": ("boy", "lad"),
    "girl": ("girl", "lass"),
    "little girl": ("little girl",),
    "little boy": ("little boy",),
    "man": ("man", "guy"),
    "woman": ("woman", "lady"),
    "old man": ("old man", "grandpa", "grandfather"),
    "old woman": ("old woman", "grandma", "grandmother", "old lady"),
    "child": ("child", "kid"),
    "baby": ("baby",),
    "student": ("student",),
    "teacher": ("teacher",),
    "cat": ("cat", "kitty"),
    "kitten": ("kitten",),
    "dog": ("dog", "doggy"),
    "puppy": ("puppy",),
    "rabbit": ("rabbit", "bunny"),
    "fox": ("fox",),
    "bird": ("bird",),
    "panda": ("panda",),
    "bear": ("bear",),
    "robot": ("robot", "android", "mecha"),
    "dragon": ("dragon",),
    "dinosaur": ("dinosaur",),
    "princess": ("princess",),
    "prince": ("prince",),
    "knight": ("knight",),
    "witch": ("witch",),
    "wizard": ("wizard",),
    "magical girl": ("magical girl",),
    "ninja": ("ninja",),
    "samurai": ("samurai",),
    "elf": ("elf",),
    "angel": ("angel",),
    "mermaid": ("mermaid",),
    "penguin": ("penguin",),
    "goldfish": ("goldfish",),
}

#: Plurals that are not ``word + "s"`` (keyed by the last word of the subject).
_IRREGULAR_PLURALS: Mapping[str, str] = MappingProxyType(
    {
        "man": "men",
        "woman": "women",
        "child": "children",
        "fox": "foxes",
        "witch": "witches",
        "princess": "princesses",
        "samurai": "samurai",
        "elf": "elves",
        "puppy": "puppies",
        "baby": "babies",
        "lady": "ladies",
        "bunny": "bunnies",
        "kitty": "kitties",
        "doggy": "doggies",
        "mecha": "mecha",
        "goldfish": "goldfish",
    }
)


def plural_of(noun: str) -> str:
    """English plural of a (possibly multi-word) noun: only the last word changes."""
    head, _, last = noun.rpartition(" ")
    plural = _IRREGULAR_PLURALS.get(last, last + "s")
    return f"{head} {plural}" if head else plural


# --------------------------------------------------------------------------
# Describing the subject
# --------------------------------------------------------------------------

_ADJECTIVES_ZH: Table = {
    "cute": ("可爱", "可愛", "得意", "卡哇伊"),
    "beautiful": ("漂亮", "美丽", "美麗", "好看", "靓", "靚"),
    "handsome": ("帅", "帥", "帅气", "帥氣", "英俊"),
    "young": ("年轻", "年輕"),
    "smiling": ("笑", "微笑", "笑着", "笑著", "笑咪咪"),
    "happy": ("开心", "開心", "快乐", "快樂", "高兴", "高興"),
    "sad": ("伤心", "傷心", "难过", "難過", "悲伤", "悲傷"),
    "crying": ("哭", "哭泣", "喊"),
    "shy": ("害羞", "怕羞"),
    "cool": ("酷",),
    "fluffy": ("毛茸茸",),
    "chinese": ("中国", "中國"),
    "japanese": ("日本",),
}

_ADJECTIVES_EN: Table = {
    "cute": ("cute", "adorable", "kawaii"),
    "beautiful": ("beautiful", "pretty", "gorgeous"),
    "handsome": ("handsome",),
    "young": ("young",),
    "old": ("old", "elderly"),
    "smiling": ("smiling", "smile", "smiles"),
    "happy": ("happy", "cheerful"),
    "sad": ("sad",),
    "crying": ("crying", "cries"),
    "shy": ("shy",),
    "cool": ("cool",),
    "fluffy": ("fluffy",),
    "little": ("little", "small", "tiny"),
    "tall": ("tall",),
}

_COLOR_CHARS_ZH: Table = {
    "red": ("红", "紅"),
    "orange": ("橙", "橘"),
    "yellow": ("黄", "黃"),
    "green": ("绿", "綠"),
    "blue": ("蓝", "藍"),
    "purple": ("紫",),
    "pink": ("粉", "粉红", "粉紅"),
    "white": ("白",),
    "black": ("黑",),
    "grey": ("灰",),
    "silver": ("银", "銀"),
    "golden": ("金",),
    "brown": ("棕", "褐", "啡"),
    "light blue": ("天蓝", "天藍", "浅蓝", "淺藍"),
}

_COLORS_EN: Table = {
    "red": ("red",),
    "orange": ("orange",),
    "yellow": ("yellow",),
    "green": ("green",),
    "blue": ("blue",),
    "purple": ("purple", "violet"),
    "pink": ("pink",),
    "white": ("white",),
    "black": ("black",),
    "grey": ("grey", "gray"),
    "silver": ("silver",),
    "golden": ("golden", "gold"),
    "blonde": ("blonde", "blond"),
    "brown": ("brown",),
    "light blue": ("light blue",),
}

#: How a colour is said when it describes hair ("golden hair" -> "blonde hair").
HAIR_COLOR_NAMES: Mapping[str, str] = MappingProxyType({"golden": "blonde"})

#: Chinese words for "hair" that follow a one-character colour (蓝发 = blue hair).
_HAIR_SUFFIXES_ZH: tuple[str, ...] = ("发", "髮")

_HAIR_ZH: Table = {
    "hair": ("头发", "頭髮", "头毛", "頭毛"),
    "long hair": ("长发", "長髮", "长头发", "長頭髮", "长长的头发", "長長的頭髮"),
    "short hair": ("短发", "短髮", "短头发", "短頭髮"),
    "curly hair": ("卷发", "捲髮", "卷头发", "曲髮"),
    "straight hair": ("直发", "直髮"),
    "ponytail": ("马尾", "馬尾", "马尾辫", "馬尾辮"),
    "twin tails": ("双马尾", "雙馬尾"),
    "braid": ("辫子", "辮子", "麻花辫", "麻花辮"),
    "bob cut": ("波波头", "波波頭"),
}

_HAIR_EN: Table = {
    "hair": ("hair",),
    "long hair": ("long hair",),
    "short hair": ("short hair",),
    "curly hair": ("curly hair",),
    "straight hair": ("straight hair",),
    "ponytail": ("ponytail",),
    "twin tails": ("twin tails", "twintails", "pigtails"),
    "braid": ("braid", "braids", "braided hair"),
    "bob cut": ("bob cut",),
}

_EYES_ZH: Table = {"eyes": ("眼睛", "眼", "眼眸", "眸", "瞳", "瞳孔")}
_EYES_EN: Table = {"eyes": ("eyes", "eye")}

_CLOTHING_ZH: Table = {
    "glasses": ("眼镜", "眼鏡"),
    "sunglasses": ("墨镜", "墨鏡", "太阳镜", "太陽鏡", "太阳眼镜", "太陽眼鏡"),
    "a school uniform": ("校服", "学生服", "學生服"),
    "a sailor uniform": ("水手服",),
    "a kimono": ("和服",),
    "a yukata": ("浴衣",),
    "a hoodie": ("卫衣", "衛衣", "连帽衫", "連帽衫"),
    "a hat": ("帽子", "帽"),
    "a straw hat": ("草帽",),
    "a witch hat": ("巫师帽", "巫師帽", "魔女帽"),
    "a dress": ("裙子", "裙", "连衣裙", "連衣裙", "連身裙", "长裙", "長裙"),
    "a skirt": ("短裙", "半身裙"),
    "a wedding dress": ("婚纱", "婚紗"),
    "a suit": ("西装", "西裝"),
    "a jacket": ("外套", "夹克", "夾克", "褸"),
    "a coat": ("大衣", "大褸"),
    "a scarf": ("围巾", "圍巾", "頸巾"),
    "a qipao": ("旗袍",),
    "hanfu": ("汉服", "漢服"),
    "a t-shirt": ("恤",),
    "a shirt": ("衬衫", "襯衫", "恤衫"),
    "a sweater": ("毛衣", "冷衫"),
    "a swimsuit": ("泳衣",),
    "a maid outfit": ("女仆装", "女僕裝"),
    "headphones": ("耳机", "耳機"),
    "a cloak": ("斗篷", "披风", "披風"),
    "armor": ("盔甲", "铠甲", "鎧甲"),
    "a mask": ("面具", "口罩"),
    "a ribbon": ("蝴蝶结", "蝴蝶結", "发带", "髮帶"),
    "pajamas": ("睡衣",),
}

_CLOTHING_EN: Table = {
    "glasses": ("glasses", "spectacles", "eyeglasses"),
    "sunglasses": ("sunglasses",),
    "a school uniform": ("school uniform",),
    "a sailor uniform": ("sailor uniform",),
    "a kimono": ("kimono",),
    "a yukata": ("yukata",),
    "a hoodie": ("hoodie",),
    "a hat": ("hat", "cap"),
    "a straw hat": ("straw hat",),
    "a witch hat": ("witch hat",),
    "a dress": ("dress",),
    "a skirt": ("skirt",),
    "a wedding dress": ("wedding dress",),
    "a suit": ("suit",),
    "a jacket": ("jacket",),
    "a coat": ("coat",),
    "a scarf": ("scarf",),
    "a qipao": ("qipao", "cheongsam"),
    "hanfu": ("hanfu",),
    "a t-shirt": ("t-shirt", "tshirt", "tee"),
    "a shirt": ("shirt",),
    "a sweater": ("sweater", "jumper"),
    "a swimsuit": ("swimsuit", "bikini"),
    "a maid outfit": ("maid outfit", "maid dress"),
    "headphones": ("headphones",),
    "a cloak": ("cloak", "cape"),
    "armor": ("armor", "armour"),
    "a mask": ("mask",),
    "a ribbon": ("ribbon", "hair ribbon", "bow"),
    "pajamas": ("pajamas", "pyjamas"),
}

_FEATURES_ZH: Table = {
    "cat ears": ("猫耳", "貓耳", "猫耳朵", "貓耳朵"),
    "fox ears": ("狐狸耳朵", "狐耳"),
    "wings": ("翅膀", "翼"),
    "a tail": ("尾巴",),
    "freckles": ("雀斑",),
    "horns": ("犄角", "龙角", "龍角"),
}

_FEATURES_EN: Table = {
    "cat ears": ("cat ears",),
    "fox ears": ("fox ears",),
    "wings": ("wings",),
    "a tail": ("tail",),
    "freckles": ("freckles",),
    "horns": ("horns",),
}

# --------------------------------------------------------------------------
# Objects and actions
# --------------------------------------------------------------------------

_OBJECTS_ZH: Table = {
    "a book": ("书", "書", "书本", "書本"),
    "an umbrella": ("伞", "傘", "雨伞", "雨傘", "遮"),
    "flowers": ("花", "鲜花", "鮮花", "花束"),
    "a guitar": ("吉他", "結他", "结他"),
    "a sword": ("剑", "劍", "刀"),
    "a phone": ("手机", "手機"),
    "a cake": ("蛋糕",),
    "ramen": ("拉面", "拉麵"),
    "noodles": ("面条", "麵條", "麵"),
    "coffee": ("咖啡",),
    "tea": ("茶", "奶茶"),
    "ice cream": ("冰淇淋", "雪糕"),
    "a balloon": ("气球", "氣球"),
    "a magic wand": ("魔杖", "魔法棒"),
    "a school bag": ("书包", "書包"),
    "a lantern": ("灯笼", "燈籠"),
    "a camera": ("相机", "相機"),
    "a teddy bear": ("泰迪熊", "公仔熊"),
    "a kite": ("风筝", "風箏"),
    "an airplane": ("飞机", "飛機"),
    "food": ("食物",),
}

_OBJECTS_EN: Table = {
    "a book": ("book",),
    "an umbrella": ("umbrella",),
    "flowers": ("flowers", "flower", "bouquet"),
    "a guitar": ("guitar",),
    "a sword": ("sword", "katana"),
    "a phone": ("phone", "smartphone"),
    "a cake": ("cake",),
    "ramen": ("ramen",),
    "noodles": ("noodles",),
    "coffee": ("coffee",),
    "tea": ("tea", "bubble tea"),
    "ice cream": ("ice cream",),
    "a balloon": ("balloon",),
    "a magic wand": ("magic wand", "wand"),
    "a school bag": ("school bag", "backpack"),
    "a lantern": ("lantern",),
    "a camera": ("camera",),
    "a teddy bear": ("teddy bear",),
    "a kite": ("kite",),
    "an airplane": ("airplane", "plane"),
    "food": ("food",),
}

_ACTIONS_ZH: Table = {
    "reading a book": ("看书", "看書", "读书", "讀書", "睇书", "睇書", "看着书", "看著書", "睇緊書"),
    "running": ("跑", "跑步", "奔跑", "跑緊"),
    "sleeping": ("睡觉", "睡覺", "睡", "瞓覺", "瞓觉", "瞓", "睡着", "睡著"),
    "eating": ("吃", "食", "吃东西", "吃東西", "食嘢", "吃饭", "吃飯", "食飯"),
    "drinking": ("喝", "饮", "飲", "喝水", "飲水"),
    "playing guitar": ("弹吉他", "彈吉他", "彈結他", "弹结他"),
    "playing the piano": ("弹钢琴", "彈鋼琴"),
    "looking at the sky": ("看天空", "看着天空", "看著天空", "望天", "望住天", "睇天", "仰望天空"),
    "looking at the stars": ("看星星", "睇星", "望星星"),
    "looking at the sea": ("看海", "睇海", "望海"),
    "watching the sunset": ("看日落", "睇日落"),
    "walking": ("走路", "散步", "行路", "行街", "走"),
    "singing": ("唱歌", "唱"),
    "dancing": ("跳舞",),
    "painting": ("画画", "畫畫", "画画儿"),
    "swimming": ("游泳", "游水"),
    "flying": ("飞", "飛", "飞翔", "飛翔"),
    "sitting": ("坐", "坐着", "坐著"),
    "standing": ("站", "站着", "站著", "企"),
    "cooking": ("做饭", "做飯", "煮饭", "煮飯", "煮嘢食"),
    "writing": ("写字", "寫字", "写作业", "寫作業"),
    "fishing": ("钓鱼", "釣魚"),
    "waiting": ("等", "等待"),
    "listening to music": ("听音乐", "聽音樂", "听歌", "聽歌"),
    "playing video games": ("打游戏", "打遊戲", "打機", "玩游戏", "玩遊戲"),
    "talking on the phone": ("打电话", "打電話"),
    "fighting": ("打架", "战斗", "戰鬥"),
    "jumping": ("跳",),
    "hugging": ("抱", "抱着", "抱著", "攬住", "揽住"),
    "holding": ("拿", "拿着", "拿著", "揸住", "揸", "举着", "舉著", "拎", "拎住", "拎着", "拎著", "攞", "攞住"),
    "flying a kite": ("放风筝", "放風箏"),
    "holding an umbrella": ("撑伞", "撐傘", "打伞", "打傘", "擔遮", "担遮"),
    "riding": ("骑", "騎", "骑着", "騎著"),
    "riding a bicycle": ("骑自行车", "騎自行車", "踩单车", "踩單車", "骑单车", "騎單車"),
    "looking at": ("看", "看着", "看著", "望", "望住", "睇", "睇住"),
    "playing": ("玩", "弹", "彈"),
}

_ACTIONS_EN: Table = {
    "reading a book": ("reading a book", "reads a book", "reading books"),
    "reading": ("reading", "reads"),
    "running": ("running", "runs", "run"),
    "sleeping": ("sleeping", "sleeps", "asleep", "napping"),
    "eating": ("eating", "eats", "eat"),
    "drinking": ("drinking", "drinks", "sipping"),
    "playing guitar": ("playing guitar", "playing the guitar", "plays guitar", "plays the guitar"),
    "playing the piano": ("playing the piano", "playing piano", "plays the piano", "plays piano"),
    "looking at the sky": ("looking at the sky", "looking up at the sky", "looks at the sky", "gazing at the sky"),
    "looking at the stars": ("looking at the stars", "stargazing"),
    "looking at the sea": ("looking at the sea", "looking at the ocean"),
    "watching the sunset": ("watching the sunset",),
    "walking": ("walking", "walks", "strolling"),
    "singing": ("singing", "sings"),
    "dancing": ("dancing", "dances"),
    "painting": ("painting", "paints", "drawing"),
    "swimming": ("swimming", "swims"),
    "flying": ("flying", "flies"),
    "sitting": ("sitting", "sits", "seated"),
    "standing": ("standing", "stands"),
    "cooking": ("cooking", "cooks"),
    "writing": ("writing", "writes"),
    "fishing": ("fishing",),
    "waiting": ("waiting", "waits"),
    "listening to music": ("listening to music", "listens to music"),
    "playing video games": ("playing video games", "playing games", "gaming"),
    "talking on the phone": ("talking on the phone",),
    "fighting": ("fighting", "fights"),
    "jumping": ("jumping", "jumps"),
    "hugging": ("hugging", "hugs", "cuddling"),
    "holding": ("holding", "holds", "carrying", "carries"),
    "holding an umbrella": ("holding an umbrella",),
    "flying a kite": ("flying a kite", "flying kites"),
    "riding": ("riding", "rides"),
    "riding a bicycle": ("riding a bicycle", "riding a bike", "cycling"),
    "looking at": ("looking at", "looks at", "watching", "watches", "gazing at"),
    "playing": ("playing", "plays"),
}

#: Actions that take the object after them ("eating" + "ramen").
_TRANSITIVE_ACTIONS: frozenset[str] = frozenset(
    {"reading", "eating", "drinking", "hugging", "holding", "riding", "looking at", "playing"}
)

# --------------------------------------------------------------------------
# Scene
# --------------------------------------------------------------------------

_PLACES_ZH: Table = {
    "school": ("学校", "學校", "校园", "校園"),
    "classroom": ("教室", "课室", "課室"),
    "beach": ("海边", "海邊", "海滩", "海灘", "沙滩", "沙灘"),
    "sea": ("海", "大海", "海上"),
    "underwater": ("海底", "水底", "水下"),
    "forest": ("森林", "树林", "樹林", "林中"),
    "city": ("城市", "都市"),
    "street": ("街道", "街", "街头", "街頭", "马路", "馬路"),
    "city street": ("城市街道", "城市的街道", "市区", "市區"),
    "cafe": ("咖啡厅", "咖啡廳", "咖啡店", "咖啡馆", "咖啡館"),
    "hong kong style diner": ("茶餐厅", "茶餐廳"),
    "bedroom": ("卧室", "臥室", "睡房", "房间", "房間", "床上"),
    "kitchen": ("厨房", "廚房"),
    "mountain": ("山", "山上", "高山", "山顶", "山頂"),
    "snowy mountains": ("雪山",),
    "volcano": ("火山",),
    "cherry blossom trees": ("樱花树", "櫻花樹", "樱花林", "櫻花林"),
    "cherry blossoms": ("樱花", "櫻花"),
    "park": ("公园", "公園"),
    "library": ("图书馆", "圖書館"),
    "bookstore": ("书店", "書店"),
    "garden": ("花园", "花園"),
    "flower field": ("花田", "花海"),
    "meadow": ("草地", "草原", "草坪"),
    "lake": ("湖", "湖边", "湖邊"),
    "river": ("河", "河边", "河邊", "小溪"),
    "sky": ("天空", "空中"),
    "blue sky": ("蓝天", "藍天"),
    "rooftop": ("屋顶", "屋頂", "天台", "楼顶", "樓頂"),
    "train station": ("车站", "車站", "火车站", "火車站", "地铁站", "地鐵站"),
    "train": ("火车", "火車", "地铁", "地鐵"),
    "shrine": ("神社",),
    "temple": ("寺庙", "寺廟", "庙", "廟"),
    "castle": ("城堡",),
    "outer space": ("太空", "宇宙", "外太空"),
    "desert": ("沙漠",),
    "night market": ("夜市",),
    "fireworks": ("烟花", "煙花", "烟火", "煙火"),
    "scenery": ("风景", "風景", "景色"),
    "shanghai": ("上海",),
    "hong kong": ("香港",),
    "tokyo": ("东京", "東京"),
    "beijing": ("北京",),
}

_PLACES_EN: Table = {
    "school": ("school", "campus"),
    "classroom": ("classroom",),
    "beach": ("beach", "seaside", "shore"),
    "sea": ("sea", "ocean"),
    "underwater": ("underwater",),
    "forest": ("forest", "woods", "jungle"),
    "city": ("city", "town"),
    "street": ("street", "road"),
    "city street": ("city street", "city streets"),
    "cafe": ("cafe", "café", "coffee shop"),
    "bedroom": ("bedroom", "room", "bed"),
    "kitchen": ("kitchen",),
    "mountain": ("mountain", "mountains", "hill", "hills"),
    "snowy mountains": ("snowy mountains",),
    "volcano": ("volcano",),
    "cherry blossom trees": ("cherry blossom trees", "cherry blossom tree", "cherry trees", "sakura trees"),
    "cherry blossoms": ("cherry blossoms", "cherry blossom", "sakura"),
    "park": ("park",),
    "library": ("library",),
    "bookstore": ("bookstore", "bookshop"),
    "garden": ("garden",),
    "flower field": ("flower field", "field of flowers"),
    "meadow": ("meadow", "grassland", "field"),
    "lake": ("lake",),
    "river": ("river", "stream"),
    "sky": ("sky",),
    "blue sky": ("blue sky",),
    "rooftop": ("rooftop", "roof"),
    "train station": ("train station", "station"),
    "train": ("train", "subway"),
    "shrine": ("shrine",),
    "temple": ("temple",),
    "castle": ("castle",),
    "outer space": ("outer space", "space"),
    "desert": ("desert",),
    "night market": ("night market",),
    "fireworks": ("fireworks",),
    "scenery": ("scenery", "landscape"),
    "shanghai": ("shanghai",),
    "hong kong": ("hong kong",),
    "tokyo": ("tokyo",),
    "beijing": ("beijing",),
}

_WEATHER_ZH: Table = {
    "rain": ("下雨", "落雨", "雨", "雨天", "雨中", "大雨", "小雨"),
    "snow": ("下雪", "落雪", "雪", "雪天", "雪地", "大雪"),
    "sunny": ("晴天", "阳光", "陽光", "晴朗", "好天"),
    "fog": ("雾", "霧", "大雾", "大霧", "起雾", "起霧", "薄雾", "薄霧"),
    "rainbow": ("彩虹",),
    "wind": ("风", "風", "大风", "大風", "刮风", "刮風", "打风", "打風"),
    "thunderstorm": ("雷雨", "打雷", "闪电", "閃電", "行雷"),
    "cloudy": ("多云", "多雲", "阴天", "陰天", "云", "雲"),
}

_WEATHER_EN: Table = {
    "rain": ("rain", "raining", "rainy", "rains"),
    "snow": ("snow", "snowing", "snowy", "snows"),
    "sunny": ("sunny", "sunshine", "sunlight"),
    "fog": ("fog", "foggy", "mist", "misty"),
    "rainbow": ("rainbow",),
    "wind": ("wind", "windy"),
    "thunderstorm": ("thunderstorm", "storm", "lightning"),
    "cloudy": ("cloudy", "clouds", "overcast"),
}

_TIME_ZH: Table = {
    "night": ("晚上", "夜晚", "夜里", "夜裡", "夜", "深夜", "黑夜", "夜晚", "半夜", "夜晚嘅"),
    "sunset": ("黄昏", "黃昏", "日落", "夕阳", "夕陽", "傍晚", "晚霞"),
    "morning": ("早上", "早晨", "清晨", "朝早", "上午"),
    "sunrise": ("日出",),
    "daytime": ("白天", "中午", "日头", "日頭", "下午"),
    "starry sky": ("星空", "星星", "满天星", "滿天星"),
    "moonlight": ("月光", "月亮", "月", "满月", "滿月"),
    "spring": ("春天",),
    "summer": ("夏天",),
    "autumn": ("秋天",),
    "winter": ("冬天",),
}

_TIME_EN: Table = {
    "night": ("night", "nighttime", "midnight", "tonight"),
    "evening": ("evening",),
    "sunset": ("sunset", "dusk", "twilight"),
    "morning": ("morning",),
    "sunrise": ("sunrise", "dawn"),
    "daytime": ("daytime", "day", "noon", "afternoon"),
    "starry sky": ("starry sky", "stars", "starry night"),
    "moonlight": ("moonlight", "moon", "full moon"),
    "spring": ("spring",),
    "summer": ("summer",),
    "autumn": ("autumn",),
    "winter": ("winter",),
}

# --------------------------------------------------------------------------
# Grammar words
# --------------------------------------------------------------------------

_NUMBERS_ZH: Mapping[str, str] = MappingProxyType(
    {"两": "two", "兩": "two", "二": "two", "三": "three", "四": "four", "五": "five", "几": "several", "幾": "several", "一群": "a group of", "一班": "a group of",
     "啲": "some", "些": "some", "一啲": "some", "一些": "some"}
)
#: Measure words: "两个" / "三隻" are numbers; "一个" / "一隻" are filler.
_CLASSIFIERS_ZH: tuple[str, ...] = ("个", "個", "只", "隻", "位", "名", "条", "條", "头", "頭", "张", "張", "幅", "对", "對")

_NUMBERS_EN: Mapping[str, str] = MappingProxyType(
    {"two": "two", "2": "two", "three": "three", "3": "three", "four": "four", "4": "four", "five": "five", "5": "five", "six": "six",
     "6": "six", "seven": "seven", "7": "seven", "eight": "eight", "8": "eight", "nine": "nine", "9": "nine", "ten": "ten",
     "10": "ten", "several": "several", "many": "many"}
)

_NEGATIONS_ZH: tuple[str, ...] = ("没有", "沒有", "没", "沒", "冇", "不", "唔", "不要", "唔要", "唔好", "不戴", "唔戴", "不穿", "唔着")
_NEGATIONS_EN: tuple[str, ...] = ("no", "not", "without", "don't", "dont", "never")

_LOCATIVES_ZH: tuple[str, ...] = ("在", "喺", "于", "於", "到")
_LOCATIVES_EN: tuple[str, ...] = (
    "in", "at", "on", "under", "near", "by", "inside", "beside", "behind", "above", "over",
    "through", "across", "among", "outside", "underneath", "around", "into", "onto",
)

_ARTICLES_EN: tuple[str, ...] = ("a", "an", "the")

_STOPS_ZH: tuple[str, ...] = (
    "的", "嘅", "之", "着", "著", "了", "咗", "緊", "紧", "和", "跟", "与", "與", "同", "及", "还有", "還有", "仲有",
    "一", "一起", "穿", "穿着", "穿著", "着住", "著住", "戴", "戴着", "戴著", "戴住", "有", "係", "是", "很", "好", "非常", "超",
    "正在", "里", "裡", "裏", "里面", "裡面", "下", "底下", "下面", "上", "上面", "旁边", "旁邊", "边", "邊", "隔離",
    "我", "我想", "我要", "想要", "想", "要", "请", "請", "帮我", "幫我", "给我", "給我", "俾我", "畀我", "唔该", "唔該",
    "画", "畫", "整", "生成", "图", "圖", "图片", "圖片", "照片", "画面", "畫面", "一张", "一張", "一幅",
    "那", "这", "這", "那个", "這個", "这个", "嗰", "嗰個", "呢", "呢個", "啊", "呀", "吧", "喔", "嗯", "哦", "啦", "喇", "嘢",
    "然后", "然後", "他", "她", "它", "佢", "们", "們", "一边", "一邊", "住",
    # postpositions ("in front of the blackboard" is the blackboard) and Cantonese 喺度 ("at ..." / "being ...")
    "中", "前", "前面", "后", "後", "后面", "後面", "内", "內", "外", "外面", "度", "喺度", "嗰度", "呢度",
)

_STOPS_EN: tuple[str, ...] = (
    "and", "with", "of", "is", "are", "was", "were", "be", "being", "who", "that", "which", "while", "has", "have",
    "having", "wearing", "wears", "wear", "dressed", "i", "me", "my", "want", "would", "like", "to", "please", "pls",
    "draw", "generate", "make", "create", "show", "picture", "image", "photo", "illustration", "drawing of", "some",
    "very", "really", "so", "her", "his", "their", "its", "it", "there", "here", "also", "just", "can", "could", "you",
    "as", "for", "from", "this", "these", "those", "one", "she", "he", "they", "them", "we", "up", "down", "out",
    "together", "it's", "thank", "thanks", "of a", "kind", "lot", "in the style of", "style of", "art style",
    # spoken filler
    "um", "umm", "uh", "uhh", "er", "erm", "hmm", "ah", "oh", "well", "okay", "ok", "basically", "kinda", "sorta",
    "kind of", "sort of", "you know", "i mean", "actually", "literally", "maybe", "probably", "something like",
)


# fmt: on

# --------------------------------------------------------------------------
# Index building
# --------------------------------------------------------------------------


def _add(index: dict, key: object, entry: Entry) -> None:
    """Insert one form, refusing a form that would mean two different things."""
    existing = index.get(key)
    if existing is not None and existing != entry:
        raise ValueError(f"lexicon conflict for {key!r}: {existing} vs {entry}")
    index[key] = entry


def _tables_zh() -> list[tuple[Kind, Table]]:
    return [
        (Kind.SUBJECT, _SUBJECTS_ZH),
        (Kind.ADJECTIVE, _ADJECTIVES_ZH),
        (Kind.HAIR, _HAIR_ZH),
        (Kind.EYES, _EYES_ZH),
        (Kind.CLOTHING, _CLOTHING_ZH),
        (Kind.FEATURE, _FEATURES_ZH),
        (Kind.OBJECT, _OBJECTS_ZH),
        (Kind.ACTION, _ACTIONS_ZH),
        (Kind.PLACE, _PLACES_ZH),
        (Kind.WEATHER, _WEATHER_ZH),
        (Kind.TIME, _TIME_ZH),
    ]


def _tables_en() -> list[tuple[Kind, Table]]:
    return [
        (Kind.SUBJECT, _SUBJECTS_EN),
        (Kind.ADJECTIVE, _ADJECTIVES_EN),
        (Kind.COLOR, _COLORS_EN),
        (Kind.HAIR, _HAIR_EN),
        (Kind.EYES, _EYES_EN),
        (Kind.CLOTHING, _CLOTHING_EN),
        (Kind.FEATURE, _FEATURES_EN),
        (Kind.OBJECT, _OBJECTS_EN),
        (Kind.ACTION, _ACTIONS_EN),
        (Kind.PLACE, _PLACES_EN),
        (Kind.WEATHER, _WEATHER_EN),
        (Kind.TIME, _TIME_EN),
    ]


def _entry(english: str, kind: Kind) -> Entry:
    if kind is Kind.SUBJECT:
        return Entry(english, kind, plural=plural_of(english))
    return Entry(
        english, kind, transitive=kind is Kind.ACTION and english in _TRANSITIVE_ACTIONS
    )


def _build_zh() -> dict[str, Entry]:
    index: dict[str, Entry] = {}
    for kind, table in _tables_zh():
        for english, forms in table.items():
            for form in forms:
                _add(index, form, _entry(english, kind))
    for english, chars in _COLOR_CHARS_ZH.items():
        for char in chars:
            _add(index, char, Entry(english, Kind.COLOR))
            _add(index, char + "色", Entry(english, Kind.COLOR))
            hair_colour = HAIR_COLOR_NAMES.get(english, english)
            for suffix in _HAIR_SUFFIXES_ZH:
                _add(index, char + suffix, Entry(f"{hair_colour} hair", Kind.HAIR))
    for numeral, english in _NUMBERS_ZH.items():
        _add(index, numeral, Entry(english, Kind.NUMBER))
        for classifier in _CLASSIFIERS_ZH:
            _add(index, numeral + classifier, Entry(english, Kind.NUMBER))
    for classifier in _CLASSIFIERS_ZH:
        _add(index, "一" + classifier, Entry("", Kind.STOP))
    for kind, forms in (
        (Kind.NEGATION, _NEGATIONS_ZH),
        (Kind.LOCATIVE, _LOCATIVES_ZH),
        (Kind.STOP, _STOPS_ZH),
    ):
        for form in forms:
            _add(index, form, Entry("", kind))
    return index


def _build_en() -> dict[tuple[str, ...], Entry]:
    index: dict[tuple[str, ...], Entry] = {}
    for kind, table in _tables_en():
        for english, forms in table.items():
            entry = _entry(english, kind)
            for form in forms:
                words = tuple(form.split())
                _add(index, words, entry)
                if kind is Kind.SUBJECT and plural_of(form) != form:
                    plural = Entry(english, kind, plural=entry.plural, is_plural=True)
                    _add(index, tuple(plural_of(form).split()), plural)
    for word, english in _NUMBERS_EN.items():
        _add(index, (word,), Entry(english, Kind.NUMBER))
    for article in _ARTICLES_EN:
        _add(index, (article,), Entry(article, Kind.ARTICLE))
    for kind, forms in (
        (Kind.NEGATION, _NEGATIONS_EN),
        (Kind.LOCATIVE, _LOCATIVES_EN),
        (Kind.STOP, _STOPS_EN),
    ):
        for form in forms:
            _add(index, tuple(form.split()), Entry("", kind))
    return index


#: Chinese surface form (simplified, traditional or Cantonese) -> meaning.
ZH_INDEX: Mapping[str, Entry] = MappingProxyType(_build_zh())
#: Longest Chinese form, in characters (bounds the greedy segmenter).
ZH_MAX_LEN: int = max(map(len, ZH_INDEX))
#: Lower-case English word sequence -> meaning (plurals of subjects included).
EN_INDEX: Mapping[tuple[str, ...], Entry] = MappingProxyType(_build_en())
#: Longest English form, in words.
EN_MAX_WORDS: int = max(map(len, EN_INDEX))


# --------------------------------------------------------------------------
# English phrases back into Chinese (for showing a parse to a Chinese reader)
# --------------------------------------------------------------------------

#: Words the prompt builder adds around lexicon phrases, in Chinese ("" = dropped).
_GLUE_ZH: Mapping[str, str] = MappingProxyType(
    {"wearing": "戴着", "with": "有", "and": "和", "a": "", "an": "", "the": "", "of": "的"}
)


#: Hair-length words the English side merges into "long silver hair".
ZH_NAMES_EXTRA: Mapping[str, str] = MappingProxyType({"long": "长", "short": "短"})


def _build_zh_names() -> dict[str, str]:
    names: dict[str, str] = {}
    for kind, table in _tables_zh():
        for english, forms in table.items():
            if forms:
                names.setdefault(english, forms[0])
                if kind is Kind.SUBJECT:
                    names.setdefault(plural_of(english), forms[0])
    for english, chars in _COLOR_CHARS_ZH.items():
        names.setdefault(english, chars[0])
    for numeral, english in _NUMBERS_ZH.items():
        names.setdefault(english, numeral if numeral.startswith("一") else numeral + "个")
    for english in ("long", "short"):
        names.setdefault(english, ZH_NAMES_EXTRA[english])
    return names


#: English canonical phrase -> its first (simplified) Chinese form.
ZH_NAMES: Mapping[str, str] = MappingProxyType(_build_zh_names())
_ZH_NAMES_MAX_WORDS = max(len(name.split()) for name in ZH_NAMES)


def in_chinese(phrase: str) -> str:
    """An English phrase built from the lexicon, in Chinese: longest known word groups first, unknown words kept."""
    words = phrase.split()
    pieces: list[str] = []
    start = 0
    while start < len(words):
        for end in range(min(len(words), start + _ZH_NAMES_MAX_WORDS), start, -1):
            group = " ".join(words[start:end]).lower()
            known = next((ZH_NAMES[g] for g in (group, f"a {group}", f"an {group}") if g in ZH_NAMES), None)
            if known is not None:
                pieces.append(known)
                break
        else:
            end = start + 1
            pieces.append(_GLUE_ZH.get(words[start].lower(), words[start]))
        start = end
    text = ""
    for piece in filter(None, pieces):
        spaced = text and piece.isascii() and text[-1].isascii()
        text += (" " if spaced else "") + piece
    return text
