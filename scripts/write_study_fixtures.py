# ruff: noqa: E501  (data: one record per line reads best)
"""Write the project-written offline data of the forgetting and small_vs_large studies.

    python scripts/write_study_fixtures.py      # rewrites benchmark_data/data/<name>_sample.jsonl

Every record is written here (templates with seeded numbers, or hand-written text), in the schema
of the hub dataset it stands in for. None is copied from the real datasets: use them for smoke
tests and demos, never to report benchmark numbers. GSM8K answers are computed, so they are right.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "benchmark_data" / "data"


def write(name: str, rows: list[dict]) -> None:
    path = OUT / name
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    print(f"{path.relative_to(OUT.parent.parent)}: {len(rows)} records")


# ---- GSM8K (openai/gsm8k, config main): question, answer with <<calc>> and a '#### N' last line
def _gsm8k(rng: random.Random) -> dict:
    kind = rng.randrange(6)
    if kind == 0:
        n, p, k = rng.randint(3, 9), rng.randint(2, 12), rng.randint(2, 5)
        name = rng.choice(["Mia", "Omar", "Lena", "Tariq", "Ines"])
        q = f"{name} buys {n} notebooks at ${p} each and {k} pens at $1 each. How much does {name} spend in dollars?"
        a = n * p + k
        sol = f"The notebooks cost {n} * {p} = <<{n}*{p}={n * p}>>{n * p} dollars.\nIn all {name} spends {n * p} + {k} = <<{n * p}+{k}={a}>>{a} dollars."
    elif kind == 1:
        speed, hours = rng.randint(30, 80), rng.randint(2, 6)
        q = f"A train travels at {speed} km per hour for {hours} hours. How many kilometres does it travel?"
        a = speed * hours
        sol = f"It travels {speed} * {hours} = <<{speed}*{hours}={a}>>{a} km."
    elif kind == 2:
        total, given = rng.randint(40, 120), rng.randint(5, 30)
        friends = rng.choice([2, 4, 5])
        left = total - given
        left -= left % friends
        total = left + given
        a = left // friends
        q = (f"A baker made {total} cookies. She sold {given} of them and shared the rest equally among "
             f"{friends} friends. How many cookies did each friend get?")
        sol = f"After selling she had {total} - {given} = <<{total}-{given}={left}>>{left} cookies.\nEach friend got {left} / {friends} = <<{left}/{friends}={a}>>{a} cookies."
    elif kind == 3:
        price, pct = rng.choice([40, 60, 80, 120, 200, 250]), rng.choice([10, 20, 25, 50])
        off = price * pct // 100
        a = price - off
        q = f"A jacket costs ${price}. It is on sale for {pct}% off. What is the sale price in dollars?"
        sol = f"The discount is {price} * {pct} / 100 = <<{price}*{pct}/100={off}>>{off} dollars.\nThe sale price is {price} - {off} = <<{price}-{off}={a}>>{a} dollars."
    elif kind == 4:
        start, spent = rng.randint(5, 30), rng.randint(31, 60)
        a = start - spent
        q = (f"Sam has ${start} in his account and pays a bill of ${spent}. What is his balance in dollars "
             f"afterwards? (A negative balance means he owes the bank.)")
        sol = f"His balance is {start} - {spent} = <<{start}-{spent}={a}>>{a} dollars."
    else:
        boxes, per = rng.randint(12, 60), rng.randint(24, 48)
        a = boxes * per
        q = f"A warehouse has {boxes} boxes with {per} bottles in each box. How many bottles are there?"
        sol = f"There are {boxes} * {per} = <<{boxes}*{per}={a}>>{a} bottles."
    return {"question": q, "answer": f"{sol}\n#### {a}"}


# ---- Alpaca (tatsu-lab/alpaca): instruction, input, output, text
ALPACA_HEAD = ("Below is an instruction that describes a task{x}. Write a response that appropriately "
               "completes the request.\n\n")
ALPACA = [
    ("Give three tips for staying healthy.", "", "1. Eat a balanced diet with plenty of fruit and vegetables.\n2. Exercise regularly.\n3. Sleep seven to nine hours a night."),
    ("Name the capital of the given country.", "Kenya", "The capital of Kenya is Nairobi."),
    ("Rewrite the sentence in the passive voice.", "The committee approved the budget.", "The budget was approved by the committee."),
    ("Classify the animal as a mammal, bird, reptile or fish.", "penguin", "A penguin is a bird."),
    ("Translate the word into French.", "library", "bibliothèque"),
    ("Summarize the text in one sentence.", "Solar panels turn sunlight into electricity. They work best facing the sun and need little maintenance, which makes them popular for homes.", "Solar panels convert sunlight into electricity with little upkeep, so many homes use them."),
    ("Give an antonym of the word.", "generous", "stingy"),
    ("Explain what photosynthesis is in two sentences.", "", "Photosynthesis is how plants use light, water and carbon dioxide to make sugar. Oxygen is released as a by-product."),
    ("Sort the numbers from smallest to largest.", "42, 7, 19, 3", "3, 7, 19, 42"),
    ("Write a haiku about autumn.", "", "Red leaves drift and fall\ncool wind hums through empty trees\nthe year exhales slow"),
    ("Correct the grammar of the sentence.", "She don't like apples.", "She doesn't like apples."),
    ("List four primary colors used in printing.", "", "Cyan, magenta, yellow and black."),
    ("Convert the temperature from Celsius to Fahrenheit.", "25 °C", "25 °C is 77 °F."),
    ("Suggest a name for a coffee shop by the sea.", "", "The Salty Bean."),
    ("Identify the verb in the sentence.", "The children laughed loudly.", "laughed"),
    ("Describe the color blue to someone who cannot see.", "", "Blue feels like cool water on your skin or a calm breath of fresh air."),
    ("Give an example of a renewable energy source.", "", "Wind power is a renewable energy source."),
    ("Compute the area of a rectangle with the given sides.", "4 m and 6 m", "The area is 4 × 6 = 24 square metres."),
    ("Write a one-sentence product description.", "a stainless steel water bottle", "This stainless steel bottle keeps drinks cold for a day and hot for twelve hours."),
    ("What is the plural of the word?", "mouse", "mice"),
    ("Explain why the sky is blue.", "", "Air molecules scatter short blue wavelengths of sunlight more than red ones, so blue light reaches our eyes from every direction."),
    ("Create a short to-do list for moving house.", "", "1. Book a van.\n2. Pack boxes by room.\n3. Update your address.\n4. Read the meters on moving day."),
    ("Find the odd one out.", "apple, banana, carrot, cherry", "carrot, because it is a vegetable and the others are fruits."),
    ("Rewrite the sentence to be more formal.", "Gonna be late, sorry!", "I apologise; I will be arriving late."),
    ("Tell me the boiling point of water at sea level.", "", "Water boils at 100 °C (212 °F) at sea level."),
    ("Generate a question about the text.", "The Nile is the longest river in Africa.", "Which river is the longest in Africa?"),
    ("Give two synonyms for the word.", "happy", "joyful, content"),
    ("Explain the difference between weather and climate.", "", "Weather is the short-term state of the atmosphere; climate is the average weather of a place over many years."),
    ("Add the two numbers.", "128 and 64", "128 + 64 = 192."),
    ("Write a friendly reminder message.", "team meeting at 10 am tomorrow", "Hi all, a quick reminder that our team meeting is tomorrow at 10 am. See you there!"),
    ("Name three instruments in an orchestra.", "", "Violin, clarinet and timpani."),
    ("Classify the sentiment of the review.", "The food was cold and the waiter was rude.", "Negative."),
    ("Explain what a noun is.", "", "A noun is a word that names a person, place, thing or idea."),
    ("Give the past tense of the verb.", "run", "ran"),
    ("Propose a healthy breakfast.", "", "Oatmeal with berries, a spoon of yoghurt and a cup of green tea."),
    ("Turn the statement into a question.", "The museum opens at nine.", "Does the museum open at nine?"),
    ("Describe a cat in three words.", "", "Curious, graceful, independent."),
    ("Calculate the average of the numbers.", "10, 20, 30, 40", "The average is (10 + 20 + 30 + 40) / 4 = 25."),
    ("Explain what recycling is.", "", "Recycling turns used materials such as paper, glass and plastic into new products instead of waste."),
    ("Write a title for the story.", "A lost dog finds its way home across the city.", "The Long Walk Home"),
]


def _alpaca(instruction: str, inp: str, output: str) -> dict:
    if inp:
        text = (ALPACA_HEAD.format(x=", paired with an input that provides further context")
                + f"### Instruction:\n{instruction}\n\n### Input:\n{inp}\n\n### Response:\n{output}")
    else:
        text = ALPACA_HEAD.format(x="") + f"### Instruction:\n{instruction}\n\n### Response:\n{output}"
    return {"instruction": instruction, "input": inp, "output": output, "text": text}


# ---- HellaSwag (Rowan/hellaswag): ctx_a, ctx_b, endings (4), label as a string, activity_label
HELLASWAG = [
    ("Making a sandwich", "A man lays two slices of bread on a cutting board.", "he",
     ["spreads butter on one slice and adds ham and cheese.", "throws the board out of the window.", "starts swimming across the kitchen floor.", "paints the bread with blue ink."], 0),
    ("Washing dishes", "A woman fills the sink with warm soapy water.", "she",
     ["climbs onto the roof to wait.", "puts the dirty plates in and scrubs them with a sponge.", "feeds the soap to a goldfish.", "drives the sink to the store."], 1),
    ("Brushing teeth", "A child squeezes toothpaste onto a toothbrush.", "the child",
     ["plants the toothbrush in a flower pot.", "reads the toothbrush a bedtime story.", "brushes the front and back teeth in small circles.", "mails the toothpaste to a friend."], 2),
    ("Changing a tire", "A man loosens the nuts of a flat tire with a wrench.", "he",
     ["bakes the wrench in the oven.", "sings to the car until it leaves.", "folds the tire into a paper plane.", "raises the car with a jack and pulls the wheel off."], 3),
    ("Walking the dog", "A girl clips a leash to her dog's collar.", "they",
     ["walk out of the door and down the street.", "fly over the houses together.", "dissolve into the carpet.", "file a tax return for the dog."], 0),
    ("Painting a wall", "A man opens a can of paint and stirs it.", "he",
     ["drinks the paint through a straw.", "dips a roller in the tray and rolls paint onto the wall.", "buries the can in the garden.", "teaches the paint to speak."], 1),
    ("Playing guitar", "A teenager sits down and tunes the strings of a guitar.", "she",
     ["uses the guitar as a snow shovel.", "sends the strings to the moon.", "strums a few chords and starts to sing.", "eats the guitar pick for lunch."], 2),
    ("Making tea", "A woman boils water in a kettle.", "she",
     ["pours the water into the washing machine.", "freezes the kettle solid.", "wears the kettle as a hat.", "pours the hot water over a tea bag in a mug."], 3),
    ("Planting a tree", "A man digs a deep hole in the garden.", "he",
     ["places the young tree in the hole and fills it with soil.", "jumps into the hole and disappears forever.", "fills the hole with soup.", "paints the hole bright yellow."], 0),
    ("Ironing clothes", "A woman lays a wrinkled shirt on an ironing board.", "she",
     ["feeds the shirt to the iron.", "presses the hot iron over the shirt until it is smooth.", "throws the board into the lake.", "mails the wrinkles away."], 1),
    ("Shoveling snow", "A man steps outside after a heavy snowfall with a shovel.", "he",
     ["plants seeds in the snow shovel.", "irons the snow flat.", "scoops the snow off the path and throws it aside.", "calls the snow on the phone."], 2),
    ("Baking a cake", "A girl mixes flour, sugar and eggs in a bowl.", "she",
     ["puts the bowl on her head and leaves.", "mails the eggs back to the hen.", "paints the flour on the wall.", "pours the batter into a pan and puts it in the oven."], 3),
    ("Washing a car", "A man sprays the car with a hose.", "he",
     ["rubs soap over the doors with a large sponge.", "plants the hose in the ground.", "drives the hose to the car wash.", "asks the car to wash itself."], 0),
    ("Tying shoelaces", "A boy sits on the step and pulls his shoes on.", "he",
     ["throws the shoes into the sky.", "crosses the laces, loops them and pulls a bow tight.", "cooks the laces in a pot.", "glues the shoes to the step."], 1),
    ("Swimming laps", "A swimmer dives into the pool at the shallow end.", "she",
     ["climbs a tree beside the pool.", "reads a newspaper under water.", "swims freestyle to the far wall and turns.", "drains the pool with a cup."], 2),
    ("Cutting hair", "A barber drapes a cape over a customer's shoulders.", "the barber",
     ["sells the cape at an auction.", "cuts the customer's shoes instead.", "sings the hair away.", "combs the hair and trims it with scissors."], 3),
    ("Vacuuming", "A woman plugs in the vacuum cleaner.", "she",
     ["pushes it back and forth across the carpet.", "waters the vacuum like a plant.", "rides the vacuum down the stairs.", "gives the vacuum a haircut."], 0),
    ("Fishing", "A man casts a line from a small boat on the lake.", "he",
     ["sets the lake on fire.", "waits quietly until the float bobs, then reels in.", "knits a sweater for the fish.", "hangs the boat on a wall."], 1),
    ("Riding a bike", "A girl puts on her helmet and climbs on her bike.", "she",
     ["bakes the helmet into a pie.", "rolls the bike into the fridge.", "pedals down the road toward the park.", "folds the bike into her pocket."], 2),
    ("Writing a letter", "A man sits at a desk with paper and a pen.", "he",
     ["eats the paper slowly.", "throws the desk out of the window.", "dances with the pen.", "writes a few lines, folds the page and puts it in an envelope."], 3),
    ("Cleaning windows", "A woman sprays glass cleaner on a window.", "she",
     ["wipes the glass with a cloth until it shines.", "breaks the window with the bottle.", "paints the window black.", "drinks the glass cleaner."], 0),
    ("Doing laundry", "A man carries a basket of dirty clothes to the machine.", "he",
     ["plants the clothes in the garden.", "loads the clothes, adds detergent and starts the wash.", "burns the basket in the sink.", "mails the socks to the moon."], 1),
    ("Making pancakes", "A woman pours batter into a hot frying pan.", "she",
     ["throws the pan at the ceiling.", "puts the batter in the mailbox.", "waits for bubbles, then flips the pancake with a spatula.", "washes the batter off with soap."], 2),
    ("Skipping rope", "A girl holds a jump rope by both handles.", "she",
     ["ties the rope around the house.", "eats the handles.", "mails the rope to her teacher.", "swings the rope over her head and jumps as it passes under her feet."], 3),
]


# ---- MMLU (cais/mmlu), computer-science subjects: question, subject, choices (4), answer (int)
MMLU = [
    ("high_school_computer_science", "Which data structure serves items in first-in, first-out order?", ["Stack", "Queue", "Binary tree", "Hash set"], 1),
    ("high_school_computer_science", "How many bits are in one byte?", ["4", "8", "16", "32"], 1),
    ("high_school_computer_science", "What is the binary representation of the decimal number 5?", ["101", "110", "111", "100"], 0),
    ("high_school_computer_science", "Which of these is a loop construct in Python?", ["if", "def", "while", "import"], 2),
    ("high_school_computer_science", "What does CPU stand for?", ["Central Processing Unit", "Computer Power Unit", "Core Program Utility", "Central Program Update"], 0),
    ("high_school_computer_science", "What is the worst-case time of binary search on a sorted list of n items?", ["O(n)", "O(n log n)", "O(1)", "O(log n)"], 3),
    ("high_school_computer_science", "Which value does the Boolean expression (True and False) or True have?", ["True", "False", "None", "It raises an error"], 0),
    ("high_school_computer_science", "Which of these is NOT a programming language?", ["Java", "HTML", "C", "Rust"], 1),
    ("college_computer_science", "What is the worst-case time complexity of quicksort?", ["O(n)", "O(n log n)", "O(n^2)", "O(log n)"], 2),
    ("college_computer_science", "Which traversal of a binary search tree lists its keys in sorted order?", ["Pre-order", "In-order", "Post-order", "Level-order"], 1),
    ("college_computer_science", "A graph algorithm that finds shortest paths with non-negative edge weights is", ["Dijkstra's algorithm", "Kruskal's algorithm", "Depth-first search", "Topological sort"], 0),
    ("college_computer_science", "Which problem is known to be undecidable?", ["Sorting", "The halting problem", "Shortest path", "Matrix multiplication"], 1),
    ("college_computer_science", "How many edges does a tree with n vertices have?", ["n", "n + 1", "2n", "n - 1"], 3),
    ("college_computer_science", "Which page-replacement policy evicts the page unused for the longest time?", ["FIFO", "Random", "LRU", "MRU"], 2),
    ("college_computer_science", "In two's complement with 8 bits, what is the smallest representable integer?", ["-128", "-127", "-255", "0"], 0),
    ("college_computer_science", "Which structure gives amortised O(1) insert and lookup by key on average?", ["Linked list", "Hash table", "Sorted array", "Heap"], 1),
    ("computer_security", "Which attack floods a server with traffic from many machines?", ["Phishing", "SQL injection", "Distributed denial of service", "Buffer overflow"], 2),
    ("computer_security", "What does a cryptographic hash function NOT provide?", ["A fixed-size digest", "Pre-image resistance", "Collision resistance", "Decryption of the input"], 3),
    ("computer_security", "Which protocol secures web traffic between a browser and a server?", ["TLS", "FTP", "SMTP", "ARP"], 0),
    ("computer_security", "Sending a fake email that asks a user for a password is called", ["Spoofing the DNS", "Phishing", "Port scanning", "Salting"], 1),
    ("computer_security", "Why are passwords stored with a random salt before hashing?", ["To make them shorter", "To encrypt the database", "To defeat precomputed rainbow tables", "To speed up logins"], 2),
    ("computer_security", "Which key is kept secret in public-key cryptography?", ["The public key", "The certificate", "The session ID", "The private key"], 3),
    ("machine_learning", "Which method is used to train neural networks by propagating errors backwards?", ["Backpropagation", "Bagging", "k-means", "Dropout"], 0),
    ("machine_learning", "A model that fits its training data well but generalises poorly is", ["Underfitting", "Overfitting", "Regularised", "Converged"], 1),
]


# ---- HealthCareMagic (lavita/ChatDoctor-HealthCareMagic-100k): instruction, input, output
HCM_INSTRUCTION = "If you are a doctor, please answer the medical questions based on the patient's description."
HCM = [
    ("I have had a dry cough for two weeks after a cold, no fever. Should I worry?", "A dry cough can linger for several weeks after a viral cold and usually settles by itself. Drink warm fluids, use honey and avoid smoke. See a doctor if it lasts beyond eight weeks, you cough blood, lose weight or become breathless."),
    ("My 5 year old has a fever of 38.5 C since this morning but is playing. What should I do?", "A fever in a child who is still playing is usually from a viral infection. Give paracetamol by weight, keep fluids up and dress lightly. See a doctor if the fever lasts more than three days, the child is drowsy, has a rash or breathes fast."),
    ("I get a burning feeling in my chest after big meals, especially at night.", "This sounds like acid reflux. Eat smaller meals, avoid eating within three hours of bedtime, raise the head of the bed and cut down on coffee, alcohol and fatty food. An antacid can help. See a doctor if you have trouble swallowing, weight loss or black stools."),
    ("I twisted my ankle playing football and it is swollen but I can walk.", "This is most likely a sprain. Rest, ice for 15 minutes several times a day, compress with a bandage and keep the foot raised. Take ibuprofen for pain. If you cannot bear weight or the pain over the bone is severe, get an X-ray."),
    ("I have frequent headaches at the end of my work day, behind my eyes.", "These sound like tension headaches, often linked to screen work, posture and eye strain. Take regular breaks, check your eyesight, drink enough water and sleep well. See a doctor if headaches are sudden and severe, wake you at night or come with weakness."),
    ("My blood pressure reading at the pharmacy was 150/95. I feel fine.", "One high reading does not make a diagnosis, but it should be checked. Measure it at home on several days, reduce salt, exercise and limit alcohol. See your doctor with the readings; if it stays above 140/90 you may need treatment."),
    ("I have a red itchy rash on both hands after using a new dish soap.", "This is probably contact dermatitis from the soap. Stop using it, wear gloves for washing up and use a fragrance-free moisturiser. A mild hydrocortisone cream can calm the itch. See a doctor if it spreads, blisters or does not improve in two weeks."),
    ("I feel tired all the time and my periods are heavy.", "Heavy periods can cause iron deficiency anaemia, which makes you tired. Ask your doctor for a blood count and ferritin test. Iron-rich food helps, and your doctor may prescribe iron tablets and look into the cause of the heavy bleeding."),
    ("I have pain when I pass urine and need to go often.", "These are typical symptoms of a urinary tract infection. Drink plenty of water and see a doctor for a urine test; you may need a short course of antibiotics. Seek care quickly if you have fever, back pain or blood in the urine."),
    ("My knee hurts when I climb stairs. I am 55 and slightly overweight.", "Knee pain on stairs at this age is often from osteoarthritis. Losing some weight, strengthening the thigh muscles and low-impact exercise such as cycling help. Paracetamol or an anti-inflammatory gel can ease pain. See a doctor if the knee swells or locks."),
    ("I cannot fall asleep until 3 am most nights.", "Keep a regular wake-up time, avoid screens and caffeine in the evening, and get daylight in the morning. Use the bed only for sleep. If this continues for more than three months, a doctor can offer cognitive behavioural therapy for insomnia."),
    ("I have a sore throat and white spots on my tonsils with fever.", "White spots with fever may be tonsillitis, sometimes bacterial. See a doctor for a throat swab; strep throat needs antibiotics. Meanwhile rest, drink fluids and take paracetamol. Go urgently if you cannot swallow saliva or open your mouth."),
    ("My stomach hurts on the lower right side and it is getting worse.", "Worsening pain in the lower right abdomen can be appendicitis. Please see a doctor or go to the emergency department today, especially if you have fever, vomiting or pain when walking. Do not eat until you are assessed."),
    ("I have dandruff and an itchy scalp.", "Dandruff is common and usually due to seborrhoeic dermatitis. Use an anti-dandruff shampoo with ketoconazole or zinc pyrithione two to three times a week, leaving it on for five minutes. See a doctor if the scalp is red, painful or losing hair."),
    ("After running I get pain on the inside of my shins.", "This sounds like shin splints from overuse. Reduce running for two weeks, ice the shins, and return gradually on soft surfaces with good shoes. See a doctor if the pain is in one spot on the bone, as that can be a stress fracture."),
    ("I have been feeling sad and uninterested in things for a month.", "Low mood and loss of interest for more than two weeks can be depression. Please talk to your doctor; talking therapy and sometimes medication help. Stay in touch with friends and keep active. If you have thoughts of harming yourself, seek help immediately."),
    ("My toddler has diarrhoea since yesterday but is drinking.", "Most diarrhoea in toddlers is viral and settles within a week. Keep giving fluids, use oral rehydration solution and continue normal food. See a doctor if there is blood in the stool, fewer wet nappies, persistent vomiting or high fever."),
    ("I have a painful lump in my armpit.", "A painful lump in the armpit is often an infected hair follicle or a swollen lymph node from a nearby infection. Warm compresses help. See a doctor if it grows, lasts more than two weeks, or you have fever or night sweats."),
    ("My eyes are red and sticky in the morning.", "This is likely conjunctivitis. Clean the eyes with cooled boiled water, do not share towels and wash your hands often. Bacterial conjunctivitis may need antibiotic drops. See a doctor urgently if you have eye pain, reduced vision or light sensitivity."),
    ("I get dizzy when I stand up quickly.", "Brief dizziness on standing is often from a drop in blood pressure. Stand up slowly, drink enough fluids and check whether any medicine lowers your blood pressure. See a doctor if you faint, have chest pain or palpitations."),
    ("I have lower back pain after lifting boxes.", "This is most likely a muscle strain. Keep moving gently, use heat and take ibuprofen or paracetamol. Most back strains improve in two to six weeks. Seek urgent care if you have numbness in the groin, leg weakness or trouble passing urine."),
    ("I have had heartburn and now some trouble swallowing food.", "Trouble swallowing together with heartburn needs a doctor's assessment soon, usually with an endoscopy, to check the oesophagus. Until then eat small soft meals and avoid lying down after eating."),
    ("My ears feel blocked after a flight.", "Blocked ears after flying come from pressure changes. Swallow, yawn or gently blow with the nose pinched. A decongestant spray can help for a few days. See a doctor if there is pain, discharge or hearing loss that lasts more than a week."),
    ("I was bitten by a neighbour's dog and the skin is broken.", "Wash the wound with soap and running water for several minutes. See a doctor today: dog bites often need antibiotics, a tetanus booster and sometimes rabies assessment. Watch for redness, swelling or pus."),
    ("I have itchy, watery eyes and sneezing every spring.", "These are symptoms of hay fever. A non-drowsy antihistamine and a steroid nasal spray help, started before the season. Keep windows closed on high pollen days and shower after being outside."),
    ("I have cold sores on my lip that come back every few months.", "Cold sores are caused by the herpes simplex virus, which stays in the body and can flare with stress or sun. Start an antiviral cream at the first tingle, use sun protection on the lips and avoid kissing during a flare."),
    ("My feet burn and tingle at night. I have diabetes.", "Burning and tingling in the feet with diabetes is often diabetic neuropathy. Good blood sugar control slows it. Check your feet daily for cuts and see your doctor, who can prescribe medicine for the pain and arrange foot care."),
    ("I have a small cut that is red and warm around it after three days.", "Redness and warmth spreading from a cut can mean infection. Clean it, keep it covered and see a doctor, who may prescribe antibiotics. Go urgently if a red line spreads up the limb or you have fever."),
    ("I have sudden severe chest pain spreading to my left arm.", "Sudden chest pain spreading to the arm can be a heart attack. Call emergency services now, chew an aspirin if you are not allergic, and do not drive yourself to hospital."),
    ("My child has a barking cough and noisy breathing at night.", "A barking cough with noisy breathing is typical of croup, a viral infection. Keep the child calm and upright. See a doctor the same day; a single dose of steroid helps. Call an ambulance if the child struggles to breathe or turns blue."),
    ("I have a painful big toe joint that is red and swollen overnight.", "Sudden pain, redness and swelling of the big toe is typical of gout. Rest the foot, ice it and see a doctor, who may give anti-inflammatory medicine or colchicine. Cutting down on alcohol and red meat lowers the chance of new attacks."),
    ("I keep getting nosebleeds in winter.", "Dry indoor air in winter dries the lining of the nose. Use a humidifier and a little petroleum jelly inside the nostrils. To stop a bleed, lean forward and pinch the soft part of the nose for ten minutes. See a doctor if bleeds last longer than twenty minutes."),
]


# ---- BeerAdvocate reviews (SNAP schema): beer/name, beer/style, review/overall, review/text
BEER = {
    "American IPA": (["piney", "grapefruit", "resinous hops", "citrus peel", "a bitter finish", "tropical fruit on the nose"],
                     ["golden orange", "hazy amber"]),
    "Russian Imperial Stout": (["roasted coffee", "dark chocolate", "a thick oily body", "boozy warmth", "molasses", "burnt malt"],
                               ["pitch black", "opaque black with a tan head"]),
    "Hefeweizen": (["banana", "clove", "bready wheat", "a fluffy head", "bubblegum esters", "soft lemon"],
                   ["cloudy straw", "hazy pale yellow"]),
    "German Pilsener": (["crisp", "grassy noble hops", "clean cracker malt", "a dry snappy finish", "light honey", "spicy hop bite"],
                        ["brilliant clear gold", "pale clear straw"]),
    "Belgian Tripel": (["spicy yeast", "pear and apple", "a strong dry finish", "peppery phenols", "honeyed malt", "hidden alcohol"],
                       ["deep gold", "bright golden with a big white head"]),
}
BEER_NAMES = ["Harbor", "Old Mill", "North Star", "Red Fox", "Copper Kettle", "Blue Ridge", "Stone Bridge", "Wild Oak"]


def _beer(rng: random.Random, style: str, i: int) -> dict:
    notes, looks = BEER[style]
    a, b, c = rng.sample(notes, 3)
    text = (f"Poured from a bottle into a tulip. {rng.choice(looks).capitalize()} in the glass. "
            f"The aroma gives {a} and {b}. The taste follows with {c}. "
            f"{rng.choice(['Would buy again.', 'A solid example of the style.', 'Not bad, not great.', 'Really enjoyed this one.'])}")
    return {"beer/name": f"{rng.choice(BEER_NAMES)} {i}", "beer/style": style,
            "review/overall": rng.choice([3.0, 3.5, 4.0, 4.5]), "review/text": text}


def main() -> None:
    rng = random.Random(5)
    write("gsm8k_train_sample.jsonl", [_gsm8k(rng) for _ in range(48)])
    write("gsm8k_test_sample.jsonl", [_gsm8k(rng) for _ in range(24)])
    write("alpaca_sample.jsonl", [_alpaca(*row) for row in ALPACA])
    write("hellaswag_sample.jsonl", [
        {"ind": i, "activity_label": act, "ctx_a": a, "ctx_b": b, "ctx": f"{a} {b}", "endings": ends,
         "source_id": f"project~{i}", "split": "val", "split_type": "indomain", "label": str(label)}
        for i, (act, a, b, ends, label) in enumerate(HELLASWAG)])
    write("mmlu_cs_sample.jsonl", [{"question": q, "subject": s, "choices": c, "answer": a} for s, q, c, a in MMLU])
    write("healthcaremagic_sample.jsonl", [{"instruction": HCM_INSTRUCTION, "input": q, "output": a} for q, a in HCM])
    beer = [_beer(rng, style, i) for i in range(8) for style in BEER]
    write("beeradvocate_sample.jsonl", beer)


if __name__ == "__main__":
    main()
