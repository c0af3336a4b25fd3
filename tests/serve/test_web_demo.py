"""`llava-kit demo` in a real headless browser (Debian's chromium driven by selenium):
upload an image, ask, and the model's answer appears in the chat."""

from __future__ import annotations

import importlib.util
import os
import subprocess
from pathlib import Path

import pytest

from llava_kit.evaluators.generation import PromptItem, generate_answers
from llava_kit.templates.base import Message

for module, package in (("gradio", "llava-kit[demo]"), ("selenium", "selenium")):
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed (pip install '{package}')", allow_module_level=True)

BROWSER, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


def ensure_browser() -> None:
    """Debian's chromium and its driver, installed here when missing (root only)."""
    if os.path.exists(BROWSER) and os.path.exists(DRIVER):
        return
    if os.geteuid() != 0:
        pytest.skip("needs Debian's chromium and chromium-driver: as root, "
                    "apt-get install -y chromium chromium-driver")
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"],
                    ["apt-get", "install", "-y", "-qq", "chromium", "chromium-driver"]):
        done = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            pytest.skip(f"{' '.join(command)} failed: {done.stderr.strip()[-300:]}")


@pytest.fixture(scope="module")
def demo_url(opened):
    from llava_kit.serve import web_chat
    from llava_kit.serve.server import bind
    from llava_kit.serve.service import ModelService

    ensure_browser()
    free = bind("127.0.0.1", 0)
    port = free.getsockname()[1]
    free.close()
    service = ModelService.from_opened(opened)
    service.start()
    demo = web_chat.build_demo(service)
    web_chat.launch(demo, service, "127.0.0.1", port, block=False)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        demo.close()
        service.stop()


@pytest.fixture()
def browser():
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = BROWSER
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--window-size=1100,850"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=DRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def test_upload_ask_and_see_the_answer(demo_url, browser, opened, images, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    question = "What is shown?"
    item = PromptItem("q", [Message("user", f"<image>\n{question}")], images[:1])
    expected = generate_answers(opened.model, opened.template, [item], max_new_tokens=256,
                                progress=False)["q"]
    browser.get(demo_url)
    wait = WebDriverWait(browser, 60)
    wait.until(lambda page: page.find_elements(By.CSS_SELECTOR, "textarea"))
    browser.find_element(By.CSS_SELECTOR, "input[type=file]").send_keys(str(images[0]))
    # The upload shows as a thumbnail in the textbox before the question goes.
    wait.until(lambda page: page.find_elements(By.CSS_SELECTOR, ".thumbnail-item, .thumbnail-image, img"))
    box = browser.find_element(By.CSS_SELECTOR, "textarea")
    box.send_keys(question)
    box.send_keys(Keys.ENTER)

    def answer(page) -> str | bool:
        bots = page.find_elements(By.CSS_SELECTOR, ".message.bot")
        text = bots[-1].text.strip() if bots else ""
        return text if text == expected else False

    assert wait.until(answer) == expected
    user_images = browser.find_elements(By.CSS_SELECTOR, ".message.user img")
    assert user_images, "the uploaded image is shown in the chat"
    shot = tmp_path / "demo.png"
    browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
