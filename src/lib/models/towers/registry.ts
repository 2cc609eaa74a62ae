// The tower families, one line each: adding a family is one file and one line here.
import type { TowerFamily } from './spec.js';
import { smallTower } from './small.js';
import { resnet18, resnet34, resnet50 } from './resnet.js';
import { mobilenetV2 } from './mobilenetv2.js';

const families = new Map<string, TowerFamily>();

/** Registers a family under its name (a later registration of the same name replaces it). */
export function registerTowerFamily(family: TowerFamily): void {
  families.set(family.name, family);
}

/** The family called `name`, or undefined. */
export function towerFamily(name: string): TowerFamily | undefined {
  return families.get(name);
}

/** Registered family names, in registration order. */
export function towerFamilyNames(): string[] {
  return [...families.keys()];
}

registerTowerFamily(smallTower);
registerTowerFamily(resnet18);
registerTowerFamily(resnet34);
registerTowerFamily(resnet50);
registerTowerFamily(mobilenetV2);
