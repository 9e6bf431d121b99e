import { packageProject } from "../../tools/vitest-project.ts";

export default packageProject("nn", ["core/parity", "core"]);
