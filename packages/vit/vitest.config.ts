import { packageProject } from "../../tools/vitest-project";

export default packageProject("vit", ["core/parity", "core"]);
