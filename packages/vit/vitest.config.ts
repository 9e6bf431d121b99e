import { packageProject } from "../../tools/vitest-project.ts";

export default packageProject("vit", ["core/parity", "core"]);
