/**
 * Browser entry of the feature scenario (bundled by support.ts, loaded by the page that
 * features_test.ts serves): a FeaturesDriver as `globalThis.lightconeDriver`, called by
 * the Playwright host through `page.evaluate`.
 */
import { FeaturesDriver } from "./features_driver.ts";

(globalThis as { lightconeDriver?: FeaturesDriver }).lightconeDriver = new FeaturesDriver();
