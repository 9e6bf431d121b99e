import { packageProject } from "../../tools/vitest-project.ts";

export default packageProject("bert", ["core/parity", "core", "nn", "text"]);
